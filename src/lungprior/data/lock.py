"""Output-folder locks: one writer per folder (or per shard of it), refused with one line while the owner lives.

The lock is an advisory `flock` on a hidden file in the folder that records the owner's pid, host and start
time. The kernel drops it when the owner dies (killed included), so a dead owner never blocks a rerun; the
recorded owner only makes the refusal message useful. Sharded runs share the folder lock and each holds its
own shard's lock exclusively, so an unsharded run excludes every shard and a shard excludes its twin.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from lungprior.errors import FolderBusyError

T = TypeVar("T")


def lock_path(folder: str | os.PathLike[str], name: str) -> Path:
    """The lock file of `name` (e.g. "segment", "segment.shard-0") in `folder`."""
    return Path(folder) / f".{name}.lock"


def owner(path: str | os.PathLike[str]) -> dict[str, object]:
    """The owner recorded in a lock file ({} when it names none)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def folder_lock(folder: str | os.PathLike[str], name: str, shard: int | None = None) -> Iterator[None]:
    """Hold the lock on `folder` for the block: exclusive, or shared plus shard `shard`'s exclusive lock.

    Another live holder makes it raise a one-line `FolderBusyError` naming the folder and the owner.
    """
    with ExitStack() as stack:
        if shard is None:
            stack.enter_context(_flock(lock_path(folder, name), exclusive=True, folder=folder))
        else:
            stack.enter_context(_flock(lock_path(folder, name), exclusive=False, folder=folder))
            stack.enter_context(_flock(lock_path(folder, f"{name}.shard-{shard}"), exclusive=True, folder=folder))
        yield


def locks_output(name: str, arg: str, position: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function that writes into the folder given as argument `arg` (or positional `position`):
    each call holds `folder_lock(folder, name)`, so a second live call into the same folder is refused."""

    def wrap(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def locked(*args: Any, **kwargs: Any) -> T:
            folder = kwargs[arg] if arg in kwargs else args[position]
            with folder_lock(folder, name):
                return func(*args, **kwargs)

        return locked

    return wrap


@contextmanager
def _flock(path: Path, *, exclusive: bool, folder: str | os.PathLike[str]) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(_refusal(folder, path)) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino  # not unlinked by a holder releasing it meanwhile
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        if exclusive:
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        if exclusive:
            with suppress(OSError):
                os.unlink(path)
        os.close(fd)


def _refusal(folder: str | os.PathLike[str], path: Path) -> str:
    who = owner(path)
    if not who:  # shared holders (shards) record no owner; name a shard lock that does
        who = next((o for p in sorted(path.parent.glob(".*.lock")) if (o := owner(p))), {})
    by = f"process {who.get('pid')} on {who.get('host')} since {who.get('started')}" if who else "another process"
    return f"{folder}: in use by {by}; wait for it to finish (a run that died releases the lock)"
