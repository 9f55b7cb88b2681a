"""Lung masks as a spatial prior: tight, loose, soft, nolung, bbox, crop and the prior-loss region."""

from lungprior.masks.ops import convex_hull_per_lung, dilate, tight_mask
from lungprior.masks.spec import (
    MODES,
    RADIUS_MODES,
    MaskSpec,
    apply_prior,
    crop_region,
    kept_region,
    penalty_region,
    prior_weight,
)

__all__ = [
    "MODES", "RADIUS_MODES", "MaskSpec", "apply_prior", "convex_hull_per_lung", "crop_region", "dilate",
    "kept_region", "penalty_region", "prior_weight", "tight_mask",
]
