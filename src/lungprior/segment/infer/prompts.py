"""Box prompts: anatomical prior boxes, lung candidates from a coarse pass, boxes around them, prompt CSVs.

Sides are the patient's: on a PA film the patient's right lung is on the image's left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from lungprior.data.manifest import read_csv
from lungprior.errors import LungpriorError, ManifestError

#: Patient sides in image order (left to right on a PA film).
SIDES: tuple[str, str] = ("right", "left")
#: Relative [x0, y0, x1, y1] boxes around the right and left hemithorax of a typical adult PA film: apices at
#: about 8 % of the height, costophrenic angles above 85 %, the mediastinum within 4 % of the midline.
PRIOR_BOXES: tuple[tuple[float, float, float, float], ...] = ((0.08, 0.08, 0.48, 0.85), (0.52, 0.08, 0.92, 0.85))
PROMPT_COLUMNS: tuple[str, ...] = ("image_id", "x0", "y0", "x1", "y1")
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class AutoPromptConfig:
    """Settings of the self-prompting cascade (fractions are of the image's width, height or area)."""

    prior_boxes: tuple[tuple[float, float, float, float], ...] = PRIOR_BOXES
    pad: float = 0.03  # a lung box is padded by this fraction of its width/height on each side ...
    pad_bottom: float | None = None  # ... except at its base, when set (opaque bases stop the coarse mask short)
    refine_steps: int = 1  # refined decodes; each later one uses boxes around the previous masks
    grow_steps: int = 0  # extra decodes that move a box edge the refined lung reaches outwards ...
    grow: float = 0.06  # ... by this fraction of the box's width/height
    threshold: float = 0.5
    min_area: float = 0.02  # a lung candidate covers at least this fraction of the image ...
    max_area: float = 0.40  # ... and at most this one
    min_height: float = 0.15  # its box is at least this fraction of the image height
    min_side_share: float = 0.75  # at least this fraction of its pixels lies on its side of the midline
    fill_holes: bool = True  # fill enclosed holes of each lung (opacities the decoder left out)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.prior_boxes, dtype=np.float64)
        if boxes.shape != (2, 4) or not ((boxes >= 0) & (boxes <= 1)).all():
            raise LungpriorError("prior_boxes: need two relative [x0, y0, x1, y1] boxes within [0, 1]")
        if self.refine_steps < 1 or self.grow_steps < 0 or not 0.0 < self.grow <= 0.5:
            raise LungpriorError(f"need refine_steps >= 1, grow_steps >= 0, grow in (0, 0.5], got "
                                 f"{self.refine_steps}, {self.grow_steps}, {self.grow}")
        if not 0.0 <= self.pad <= 0.5 or not 0.0 <= self.bottom_pad <= 0.5 or not 0.0 < self.threshold < 1.0:
            raise LungpriorError(f"pad must be in [0, 0.5] and threshold in (0, 1), got {self.pad}, {self.threshold}")


    @property
    def bottom_pad(self) -> float:
        """The padding below a lung: `pad_bottom`, or `pad` when that is unset."""
        return self.pad if self.pad_bottom is None else self.pad_bottom


def grow_box(box: np.ndarray, lung: np.ndarray, shape: tuple[int, int], grow: float) -> np.ndarray | None:
    """A pixel-index box ([x0, y0, x1, y1] in an image of `shape`) with each edge that `lung` (a mask at any
    smaller size) reaches moved outwards by `grow` of the box's size; None when no edge moves.

    A box prompt should enclose its object: a mask that fills its box up to an edge was probably cut there.
    """
    h, w = shape
    sy, sx = lung.shape[0] / h, lung.shape[1] / w
    ys, xs = np.nonzero(lung)
    if ys.size == 0:
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = grow * (x1 - x0 + 1.0), grow * (y1 - y0 + 1.0)
    out = np.array([x0, y0, x1, y1])
    # a mask pixel within one work pixel of an edge that is not already the image's border
    if xs.min() <= x0 * sx + 1 and x0 > 0:
        out[0] = max(0.0, x0 - dx)
    if ys.min() <= y0 * sy + 1 and y0 > 0:
        out[1] = max(0.0, y0 - dy)
    if xs.max() >= x1 * sx - 1 and x1 < w - 1:
        out[2] = min(w - 1.0, x1 + dx)
    if ys.max() >= y1 * sy - 1 and y1 < h - 1:
        out[3] = min(h - 1.0, y1 + dy)
    return None if np.array_equal(out, box) else out


def prior_boxes(shape: tuple[int, int], config: AutoPromptConfig | None = None) -> np.ndarray:
    """The anatomical prior boxes (right, left) in pixels of an (H, W) image."""
    h, w = shape
    relative = np.asarray((config or AutoPromptConfig()).prior_boxes, dtype=np.float64)
    return relative * np.array([w, h, w, h], dtype=np.float64)


def whole_box(shape: tuple[int, int]) -> np.ndarray:
    """One box around the whole (H, W) image."""
    h, w = shape
    return np.array([[0.0, 0.0, w - 1.0, h - 1.0]])


def box_around(mask: np.ndarray, pad: float, pad_bottom: float | None = None) -> np.ndarray:
    """[x0, y0, x1, y1] (pixel edges, x1/y1 exclusive) around a non-empty mask, padded by `pad` of its size
    (by `pad_bottom` of its height below it, when given)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1.0, ys.min(), ys.max() + 1.0
    dx, dy = pad * (x1 - x0), pad * (y1 - y0)
    dy1 = dy if pad_bottom is None else pad_bottom * (y1 - y0)
    h, w = mask.shape
    return np.array([max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(w), x1 + dx), min(float(h), y1 + dy1)])


def edges_to_pixels(box: np.ndarray, from_shape: tuple[int, int], to_shape: tuple[int, int]) -> np.ndarray:
    """A box in pixel edges of an image of `from_shape` -> a pixel-index box ([x0, y0, x1, y1]) in `to_shape`."""
    sy, sx = to_shape[0] / from_shape[0], to_shape[1] / from_shape[1]
    x0, y0, x1, y1 = box * np.array([sx, sy, sx, sy])
    return np.array([x0, y0, max(x0, x1 - 1.0), max(y0, y1 - 1.0)])


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, count = ndi.label(mask, structure=_EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return labels, sizes


def lung_candidates(masks: np.ndarray, config: AutoPromptConfig | None = None) -> list[np.ndarray | None]:
    """The largest plausible connected component on each side (right, left) pooled over (K, h, w) masks.

    Plausible: area within [min_area, max_area] of the image, box height >= min_height of the image, and at
    least min_side_share of its pixels on one side of the vertical midline. None where a side has none.
    """
    config = config or AutoPromptConfig()
    k, h, w = masks.shape
    mid = w / 2.0
    columns = np.arange(w)
    best: list[np.ndarray | None] = [None, None]
    best_size = [0, 0]
    for m in range(k):
        labels, sizes = _components(masks[m])
        for idx in np.flatnonzero(sizes[1:] >= config.min_area * h * w) + 1:
            size = int(sizes[idx])
            if size > config.max_area * h * w:
                continue
            comp = labels == idx
            rows = np.flatnonzero(comp.any(axis=1))
            if rows[-1] - rows[0] + 1 < config.min_height * h:
                continue
            left_share = float(comp.sum(axis=0) @ (columns < mid)) / size
            side = 0 if left_share >= config.min_side_share else 1 if 1 - left_share >= config.min_side_share else -1
            if side >= 0 and size > best_size[side]:
                best[side], best_size[side] = comp, size
    return best


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of a mask, or None when it is empty."""
    labels, sizes = _components(mask)
    if sizes.size < 2:
        return None
    return labels == int(np.argmax(sizes[1:])) + 1


def read_prompt_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Boxes per image id from a CSV with columns image_id, x0, y0, x1, y1 (original pixels; rows may repeat ids)."""
    df = read_csv(path)
    missing = [c for c in PROMPT_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: prompt CSV is missing column(s) {', '.join(missing)}")
    if df.empty:
        raise ManifestError(f"{path}: prompt CSV has no rows")
    coords = df.loc[:, list(PROMPT_COLUMNS[1:])].apply(pd.to_numeric, errors="coerce")
    for row, (image_id, values) in enumerate(zip(df["image_id"], coords.to_numpy(), strict=True), start=2):
        if pd.isna(image_id) or not str(image_id).strip():
            raise ManifestError(f"{path}: line {row}: empty image_id")
        if not np.isfinite(values).all():
            raise ManifestError(f"{path}: line {row} ({image_id}): box coordinates must be numbers")
        x0, y0, x1, y1 = values
        if x1 < x0 or y1 < y0 or min(values) < 0:
            raise ManifestError(f"{path}: line {row} ({image_id}): need 0 <= x0 <= x1 and 0 <= y0 <= y1")
    boxes: dict[str, list[np.ndarray]] = {}
    for image_id, values in zip(df["image_id"].astype(str), coords.to_numpy(dtype=np.float64), strict=True):
        boxes.setdefault(image_id, []).append(values)
    return {k: np.stack(v) for k, v in boxes.items()}
