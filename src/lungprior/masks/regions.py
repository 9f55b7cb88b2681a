"""Box-shaped lung regions: each lung's bounding box, and the crop box around both lungs."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import find_objects, label

from lungprior.errors import LungpriorError


def _grow(box: tuple[slice, slice], margin_px: float, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """A box widened by `margin_px` on every side, clipped to the image."""
    m = int(np.ceil(max(margin_px, 0.0)))
    rows, cols = box
    return (
        slice(max(rows.start - m, 0), min(rows.stop + m, shape[0])),
        slice(max(cols.start - m, 0), min(cols.stop + m, shape[1])),
    )


def bbox_per_lung(tight: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """True inside the bounding box (grown by `margin_px`) of each connected component (each lung)."""
    tight = np.asarray(tight, dtype=bool)
    labels, count = label(tight)
    out = np.zeros_like(tight)
    for box in find_objects(labels)[:count]:
        if box is not None:
            out[_grow(box, margin_px, tight.shape)] = True
    return out


def crop_box(tight: np.ndarray, margin_px: float = 0.0) -> tuple[slice, slice]:
    """The bounding box of both lungs together, grown by `margin_px` and clipped to the image."""
    tight = np.asarray(tight, dtype=bool)
    if not tight.any():
        raise LungpriorError("empty lung mask: nothing to crop to")
    rows, cols = np.flatnonzero(tight.any(axis=1)), np.flatnonzero(tight.any(axis=0))
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
    return _grow(box, margin_px, tight.shape)


def box_mask(shape: tuple[int, ...], box: tuple[slice, slice]) -> np.ndarray:
    """A boolean image of `shape`, True inside `box`."""
    out = np.zeros(shape[:2], dtype=bool)
    out[box] = True
    return out
