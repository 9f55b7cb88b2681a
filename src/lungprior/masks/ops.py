"""Morphology on lung masks: clean-up into a tight mask, dilation, convex hull per lung."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_fill_holes, distance_transform_edt, label
from skimage.morphology import convex_hull_image

from lungprior.errors import LungpriorError


def tight_mask(seg: np.ndarray, n_components: int = 2) -> np.ndarray:
    """The lung outline: keep the `n_components` largest connected components and fill their holes."""
    seg = np.asarray(seg, dtype=bool)
    if seg.ndim != 2:
        raise LungpriorError(f"lung mask must be 2-D, got shape {seg.shape}")
    labels, count = label(seg)
    if count == 0:
        return seg.copy()
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.argsort(sizes)[::-1][:n_components] + 1
    out = np.isin(labels, keep)
    return binary_fill_holes(out)


def dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Dilate by a Euclidean disk of `radius_px` pixels (exact, via the distance transform)."""
    mask = np.asarray(mask, dtype=bool)
    if radius_px < 0:
        raise LungpriorError(f"dilation radius must be >= 0, got {radius_px}")
    if radius_px == 0 or not mask.any():
        return mask.copy()
    return distance_transform_edt(~mask) <= radius_px


def convex_hull_per_lung(mask: np.ndarray) -> np.ndarray:
    """Replace each connected component (each lung) by its convex hull: recovers the cardiac notch etc."""
    mask = np.asarray(mask, dtype=bool)
    labels, count = label(mask)
    out = np.zeros_like(mask)
    for k in range(1, count + 1):
        out |= convex_hull_image(labels == k)
    return out
