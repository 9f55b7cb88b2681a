"""Black borders around a film (scanned film edges, screenshots, padded exports): find the film inside them.

Lungs are segmented in the film's own box, so the prior boxes and the QC's border check refer to the film,
not to the black frame around it; the mask is then pasted back at the image's full size.
"""

from __future__ import annotations

import numpy as np

#: A row/column belongs to the film when more than this fraction of its pixels is above the dark level
#: (burned-in letters in a black border cover less, so they do not count as film).
FILM_SHARE = 0.5
DARK_LEVEL = 0.02  # of the image's grey range, above its minimum
MIN_KEEP = 0.6  # an axis is not cropped when less than this fraction of it would remain ...
MIN_MARGIN = 0.2  # ... or when its margins together are narrower than this fraction (collimation, air)


def film_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1), end-exclusive: the image without wide dark margins (the whole image if none).

    Narrow dark margins (less than 20 % of an axis together, as collimation or air around a body) are kept:
    the cascade handles those, and embeddings cached by fine-tuning stay valid for such films.
    """
    h, w = image.shape
    low, high = float(image.min()), float(image.max())
    if high - low <= 0:
        return 0, h, 0, w
    bright = image > low + DARK_LEVEL * (high - low)
    rows = np.flatnonzero(bright.mean(axis=1) > FILM_SHARE)
    y0, y1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, h)
    if not MIN_KEEP * h <= y1 - y0 <= (1 - MIN_MARGIN) * h:
        y0, y1 = 0, h
    cols = np.flatnonzero(bright[y0:y1].mean(axis=0) > FILM_SHARE)
    x0, x1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, w)
    if not MIN_KEEP * w <= x1 - x0 <= (1 - MIN_MARGIN) * w:
        x0, x1 = 0, w
    return y0, y1, x0, x1


def paste_back(part: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """A full-size array (zeros outside) with `part` placed at the film box."""
    y0, y1, x0, x1 = box
    full = np.zeros(shape, dtype=part.dtype)
    full[y0:y1, x0:x1] = part
    return full
