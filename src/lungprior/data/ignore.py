"""Masks with an "ignore" grey level: 0 background, 255 lung, 127 not annotated (left out of losses and metrics).

Some published lung annotations (e.g. the V7 lung masks shipped in torchxrayvision's wheel) mark regions the
annotator did not judge with grey 127. A mask whose only values are 0, 127 and 255 (127 present) is read with
that meaning: 127 is not lung and is ignored; any other non-binary mask is thresholded at 128 as before.
"""

from __future__ import annotations

import os

import numpy as np

from lungprior.data.io import read_mask_raw
from lungprior.errors import ImageReadError

IGNORE_VALUE = 127


def has_ignore(values: np.ndarray) -> bool:
    """Whether a mask's distinct values (0/127/255 with 127 present) code an ignore region."""
    found = {int(v) for v in np.asarray(values).ravel()}
    return IGNORE_VALUE in found and found <= {0, IGNORE_VALUE, 255}


def split_ignore(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lung, ignore) bool masks of an 8-bit mask; `ignore` is empty unless the mask codes one."""
    lung = raw >= 128
    ignore = raw == IGNORE_VALUE if has_ignore(np.unique(raw)) else np.zeros(raw.shape, dtype=bool)
    return lung, ignore


def read_mask_ignore(
    path: str | os.PathLike[str], shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(lung, ignore) bool masks of a mask file; with `shape`, a mask of another size raises `ImageReadError`."""
    raw = read_mask_raw(path)
    if shape is not None and tuple(raw.shape) != tuple(shape):
        got, want = f"{raw.shape[0]}x{raw.shape[1]}", f"{shape[0]}x{shape[1]}"
        raise ImageReadError(path, f"mask size {got} (HxW) differs from image size {want}")
    return split_ignore(raw)


def drop_ignored(
    pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and truth as bool masks with the ignored pixels cleared in both (they count neither way)."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if ignore is None:
        return p, t
    keep = ~np.asarray(ignore, dtype=bool)
    return p & keep, t & keep


def encode_ignore(lung: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """An 8-bit mask: 255 lung, 127 ignore (where not lung), 0 elsewhere."""
    out = np.where(np.asarray(ignore, dtype=bool), IGNORE_VALUE, 0).astype(np.uint8)
    out[np.asarray(lung, dtype=bool)] = 255
    return out
