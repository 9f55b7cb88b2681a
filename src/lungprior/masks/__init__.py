"""Tight, loose and soft lung masks: the spatial prior applied to each image."""

from lungprior.masks.ops import convex_hull_per_lung, dilate, tight_mask
from lungprior.masks.spec import MODES, MaskSpec, apply_prior, prior_weight

__all__ = ["MODES", "MaskSpec", "apply_prior", "convex_hull_per_lung", "dilate", "prior_weight", "tight_mask"]
