"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A job killed mid-write never leaves a half-written file behind; readers see the old file or the new one.
`output_dir` and `output_errors` turn a file-system error on an output path (read-only, permission, full
disk, a file where a folder should be) into a one-line `LungpriorError` naming the path and the cause.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lungprior.errors import LungpriorError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
#: The part of a target's name kept in its temporary file's name (".NAME.XXXXXXXX.SUFFIX.tmp" < 255 bytes).
TEMP_PREFIX_BYTES = 200


def os_error_message(exc: OSError, path: str | os.PathLike[str] | None = None, hint: str = "") -> str:
    """"PATH: cause" for an OSError (the path it names, else `path`), with an optional "; hint"."""
    where = exc.filename if exc.filename is not None else path
    cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.filename2 is not None:
        cause += f" (-> {exc.filename2})"
    return (f"{where}: {cause}" if where is not None else cause) + (f"; {hint}" if hint else "")


@contextmanager
def output_errors(path: str | os.PathLike[str], hint: str = "") -> Iterator[None]:
    """Raise an OSError from the block as a one-line `LungpriorError` naming the file (or `path`) and the cause."""
    try:
        yield
    except OSError as exc:
        raise LungpriorError(os_error_message(exc, path, hint)) from None


def output_dir(path: str | os.PathLike[str], option: str = "--out", hint: str = "") -> Path:
    """Create the output folder `path` if needed and check that a file can be written in it.

    A path that is a file, a folder that cannot be created or written (read-only, permission, full disk)
    raises a one-line `LungpriorError` before any work is done.
    """
    folder = Path(path)
    label = f"{option} {folder}" if option else str(folder)
    if folder.exists() and not folder.is_dir():
        raise LungpriorError(f"{label}: exists and is not a folder" + (f"; {hint}" if hint else ""))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        cause = exc.strerror or " ".join(str(exc).split())
        raise LungpriorError(f"{label}: cannot write here ({cause})" + (f"; {hint}" if hint else "")) from None
    return folder


def remove_stale_temps(folder: str | os.PathLike[str]) -> int:
    """Remove the temporary files (`.NAME.*.tmp`) that `atomic_path` leaves in `folder` when its process is
    killed; call it only while no other process writes there. Returns how many were removed."""
    removed = 0
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto `path`.

    `suffix` lets writers that choose a format by extension (e.g. PIL) see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{_short(target.name)}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _short(name: str, limit: int = TEMP_PREFIX_BYTES) -> str:
    """`name` cut to at most `limit` UTF-8 bytes, so that a temporary name stays under the 255-byte limit."""
    return name.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces `path` atomically when closed without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
