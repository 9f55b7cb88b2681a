"""Claim an output folder for a job, or refuse it when it was made with other settings.

Every command that resumes into `--out` (segment, train, fine-tune, predict, phantom) records the settings that
decide its outputs in a JSON file there. A rerun with the same settings resumes; one with other settings is one
line naming each change (`key: old -> new`); a non-empty folder without the file is refused where the command
must own the whole folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from lungprior.data.atomic import write_json
from lungprior.errors import LungpriorError


def claim_folder(
    out: str | os.PathLike[str],
    settings_file: str,
    settings: Mapping[str, Any],
    what: str,
    *,
    ignore: Collection[str] = (),
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    owns_folder: bool = True,
    record: bool = True,
    fix: str = "use a new --out folder",
) -> dict[str, Any] | None:
    """Check `out` against `settings`; return the stored settings, or None when the folder is new.

    `what` names the folder's contents in messages ("a run", "masks"); keys in `ignore` may change between runs;
    `upgrade` brings stored settings up to date (defaults of settings added since); `owns_folder` refuses a
    non-empty folder without `settings_file` (hidden files such as locks aside); `record` writes the file to a new
    folder (False where the caller writes it later, or only in one process).
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise LungpriorError(f"{folder}: exists and is not a folder; {fix}")
    path = folder / settings_file
    new = json.loads(json.dumps(dict(settings)))  # as it is stored: tuples as lists
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LungpriorError(f"{path}: unreadable ({exc})") from None
        if not isinstance(old, dict):
            raise LungpriorError(f"{path}: unreadable (not a JSON object)")
        old = json.loads(json.dumps(upgrade(old))) if upgrade is not None else old
        keys = [*new, *(k for k in old if k not in new)]
        changes = [f"{k}: {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}" for k in keys
                   if k not in ignore and old.get(k) != new.get(k)]
        if changes:
            raise LungpriorError(f"{folder}: holds {what} made with other settings ({'; '.join(changes)}); {fix}")
        return old
    if owns_folder and folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
        thing = what.removeprefix("a ").removeprefix("an ")  # "holds no run"
        raise LungpriorError(f"{folder}: folder is not empty and holds no {thing} (no {settings_file}); {fix}")
    if record:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(path, new)
    return None
