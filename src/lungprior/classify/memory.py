"""A run's own peak memory: RSS sampled during the run (this process and its children, e.g. data loaders).

`resource.getrusage(...).ru_maxrss` is the process's peak since it started, so in an experiment a small run
after a large one would report the large one's peak. `PeakRSS` samples the current resident set size from
/proc in a background thread between `start()` and `stop()` and keeps the maximum. Resident memory the
allocator kept from an earlier run in the same process still counts, so the figure is an upper bound.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes(pid: int) -> int:
    """Resident set size of `pid` from /proc/PID/statm (0 when unreadable, e.g. the process ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def tree_rss_bytes(pid: int | None = None) -> int:
    """RSS of a process and all its descendants, in bytes."""
    root = os.getpid() if pid is None else pid
    total, todo, seen = 0, [root], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_bytes(p)
        todo += _children(p)
    return total


def available() -> bool:
    """Whether /proc gives this process's RSS (Linux)."""
    return _rss_bytes(os.getpid()) > 0


class PeakRSS:
    """Peak RSS (process tree) between `start()` and `stop()`, sampled every `interval` seconds; also a context
    manager. `peak_mb` is the maximum in MiB."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> PeakRSS:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        return self.peak_mb

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    def __enter__(self) -> PeakRSS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
