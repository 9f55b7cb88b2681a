"""Error types. Every user-facing failure is a `LungpriorError` with a one-line message."""

from __future__ import annotations

import math
import re
from typing import Any


class LungpriorError(Exception):
    """A user-facing error: bad input, bad value, missing file. The CLI prints it on one line."""


class ImageReadError(LungpriorError):
    """An image or mask could not be read. The message names the path and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NoUsableMaskError(LungpriorError):
    """A film has no usable lung mask (missing, or empty as segmentation writes for blank films).

    Masked classification leaves such a film out (listed with the reason in the run folder) instead of failing.
    """


class FolderBusyError(LungpriorError):
    """Another live process holds the lock of an output folder."""


class ManifestError(LungpriorError):
    """A manifest or label table is malformed."""


def one_line(exc: BaseException, limit: int | None = 300) -> str:
    """An exception's message on one line (whitespace collapsed, cut at `limit` characters with "...")."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def shown(value: Any) -> str:
    """A cell value as a message shows it: numpy scalars as plain Python values, NaN/None as "an empty cell"."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "an empty cell"
    return repr(value)


def unpickling_reason(exc: BaseException) -> str:
    """Why `torch.load(..., weights_only=True)` refused a file, without PyTorch's advice to retry with
    `weights_only=False` (which would run the file's code): e.g. "Unsupported global: GLOBAL builtins.print"."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    found = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    useful = found or [line for line in lines if "weights_only" not in line and "torch.load" not in line
                       and "can still be loaded" not in line and "Weights only load failed" not in line]
    reason = useful[0].split(" Please ")[0] if useful else "not a plain tensor file"  # no "allowlist it" advice
    return reason[:160]
