"""Opening PyTorch weight and checkpoint files: one rule and one error format for every stage.

Files open with `weights_only=True` (no code in a file ever runs); anything but a regular file (a FIFO, a device,
a folder) is refused before reading. Errors are one line naming the file:
`PATH: WHAT not found`, `PATH: cannot read WHAT: corrupt or truncated (...)` or
`PATH: refused: the WHAT holds more than tensors and plain data (...)`, each followed by `; FIX` when given.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

from lungprior.data.regular import regular_file_problem
from lungprior.errors import LungpriorError, one_line, unpickling_reason


def load_tensor_file(
    path: str | os.PathLike[str], what: str = "checkpoint", fix: str = "", *, mmap: bool = False
) -> Any:
    """The object saved in `path` (tensors and plain data only), on the CPU; `LungpriorError` otherwise."""
    tail = f"; {fix}" if fix else ""
    problem = regular_file_problem(path)
    if problem == "file not found":
        raise LungpriorError(f"{path}: {what} not found{tail}")
    if problem is not None:
        raise LungpriorError(f"{path}: {what} {problem}{tail}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:  # removed between the check and the read
        raise LungpriorError(f"{path}: {what} not found{tail}") from None
    except pickle.UnpicklingError as exc:
        reason = unpickling_reason(exc)
        if "GLOBAL" in reason:  # a class or function to import: code that would run
            raise LungpriorError(
                f"{path}: refused: the {what} holds more than tensors and plain data ({reason}){tail}"
            ) from None
        raise LungpriorError(f"{path}: cannot read {what}: corrupt or truncated ({reason}){tail}") from None
    except Exception as exc:  # torch raises many types for unreadable files
        raise LungpriorError(f"{path}: cannot read {what}: corrupt or truncated ({one_line(exc, 160)}){tail}") from None
