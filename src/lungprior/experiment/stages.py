"""Stages of an experiment, skipped when their inputs and settings are unchanged.

Each stage folder holds `stage.json` with the content hash of everything that determines its output (its
settings and the hashes of the stages it reads). A rerun skips a stage whose recorded hash matches; a killed
stage has no `stage.json` yet and runs again, and every stage's own work resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lungprior.data.atomic import write_json
from lungprior.ranks import is_lead

STAGE_FILE = "stage.json"


def content_hash(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (dict keys sorted)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_fingerprint(path: str | os.PathLike[str] | None) -> list[Any] | None:
    """Path, size and modification time of a file (None when absent): cheap change detection for inputs."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return [str(p), None, None]
    st = p.stat()
    return [str(p.resolve()), st.st_size, int(st.st_mtime)]


@dataclass(frozen=True)
class StageOutcome:
    """What a stage produced (its `stage.json`) and whether this call ran it."""

    name: str
    folder: Path
    hash: str
    ran: bool
    record: dict[str, Any]


def finished_record(folder: str | os.PathLike[str], key: str, file: str = STAGE_FILE) -> dict[str, Any] | None:
    """The record in `folder/file` (default `stage.json`) when it holds `key`, else None."""
    marker = Path(folder) / file
    try:
        record = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("hash") == key else None


def wait_for_stage(name: str, folder: str | os.PathLike[str], key: str, poll_s: float = 2.0) -> StageOutcome:
    """Block until another process has recorded the stage with `key` (processes other than the lead)."""
    while (record := finished_record(folder, key)) is None:
        time.sleep(poll_s)
    return StageOutcome(name, Path(folder), key, False, record)


def run_stage(
    name: str, folder: str | os.PathLike[str], key: str, work: Callable[[Path], dict[str, Any]], *,
    lead: bool | None = None,
) -> StageOutcome:
    """Run `work(folder)` unless `folder/stage.json` records the same `key`; record its result dict.

    In a process other than the lead of a multi-process launch (`lead` False; by default from the environment,
    see `lungprior.ranks.is_lead`) wait for the lead's record instead.
    """
    out = Path(folder)
    record = finished_record(out, key)
    if record is not None:
        return StageOutcome(name, out, key, False, record)
    if not (is_lead() if lead is None else lead):
        return wait_for_stage(name, out, key)
    marker = out / STAGE_FILE
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = work(out)
    record = {"stage": name, "hash": key, "seconds": round(time.perf_counter() - start, 2), **result}
    write_json(marker, record)
    return StageOutcome(name, out, key, True, record)
