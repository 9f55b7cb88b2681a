"""The stat-before-open rule: only regular files are read, so a FIFO, `/dev/zero` or a socket never hangs a job.

`regular_file_problem` checks a path without opening it; `open_regular` opens it without blocking (a FIFO with no
writer would block a plain `open`) and checks the opened file again, so a file swapped for a FIFO between the
check and the open is refused too.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from lungprior.errors import LungpriorError


def regular_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` is not a regular file ("file not found", "is a FIFO ...") or None when it is one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot open ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else _kind(mode)


def require_regular_file(path: str | os.PathLike[str], what: str = "file") -> None:
    """Raise a one-line `LungpriorError` naming `path` unless it is a regular file."""
    problem = regular_file_problem(path)
    if problem is not None:
        raise LungpriorError(f"{path}: {what} {problem}" if problem == "file not found" else f"{path}: {problem}")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading in binary; `LungpriorError` for anything else, without blocking."""
    problem = regular_file_problem(path)
    if problem is not None:
        raise LungpriorError(f"{path}: {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise LungpriorError(f"{path}: cannot open ({exc.strerror or exc})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise LungpriorError(f"{path}: {_kind(mode)}")
    return os.fdopen(fd, "rb")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a plain file")
    return f"is {kind}, not a regular file; refused before reading"
