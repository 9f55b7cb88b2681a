"""How an image is masked: original, tight, loose or soft, and applying that prior to pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from lungprior.errors import LungpriorError, NoUsableMaskError
from lungprior.masks.ops import convex_hull_per_lung, dilate, tight_mask

MODES: tuple[str, ...] = ("original", "tight", "loose", "soft")
DEFAULT_RADIUS_MM = 10.0
DEFAULT_ALPHA = 0.3


@dataclass(frozen=True)
class MaskSpec:
    """A masking mode and its parameters.

    - tight: the cleaned lung outline;
    - loose: tight dilated by `radius_mm` (or `radius_px` when the spacing is unknown), optionally the convex
      hull per lung first (`hull`), keeping perihilar and peripheral context;
    - soft: lungs kept, the outside attenuated to `alpha` (0 = tight, 1 = original), with a smooth edge;
    - fill: what replaces masked-out pixels: "zero" or the image's "mean" inside the kept region.
    """

    mode: str = "original"
    radius_mm: float | None = None
    radius_px: float | None = None
    hull: bool = False
    alpha: float = DEFAULT_ALPHA
    fill: str = "zero"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LungpriorError(f"unknown mask mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.fill not in ("zero", "mean"):
            raise LungpriorError(f"unknown fill {self.fill!r}; choose 'zero' or 'mean'")
        if not 0.0 <= self.alpha <= 1.0:
            raise LungpriorError(f"soft-mask alpha must be in [0, 1], got {self.alpha}")
        for name in ("radius_mm", "radius_px"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise LungpriorError(f"{name} must be >= 0, got {v}")

    @property
    def needs_mask(self) -> bool:
        return self.mode != "original"

    def radius_in_px(self, spacing_mm: float | None) -> float:
        """The loose-mask radius in pixels for an image with the given pixel spacing."""
        if self.radius_mm is not None and spacing_mm and np.isfinite(spacing_mm) and spacing_mm > 0:
            return self.radius_mm / spacing_mm
        if self.radius_px is not None:
            return self.radius_px
        if self.radius_mm is not None:
            raise LungpriorError("loose mask given in mm but the image's pixel spacing is unknown; pass radius_px")
        raise LungpriorError("loose mask needs radius_mm (with a known pixel spacing) or radius_px")

    def key(self) -> str:
        """A stable text key of the parameters that change pixels (for caches and run names)."""
        if self.mode == "original":
            return "original"
        fill = "" if self.fill == "zero" else f"-fill{self.fill}"
        if self.mode == "tight":
            return f"tight{fill}"
        if self.mode == "soft":
            return f"soft-a{self.alpha:g}{fill}"
        radius = f"{self.radius_mm:g}mm" if self.radius_mm is not None else f"{self.radius_px or 0:g}px"
        return f"loose-{radius}{'-hull' if self.hull else ''}{fill}"


def prior_weight(lungs: np.ndarray, spec: MaskSpec, spacing_mm: float | None = None) -> np.ndarray:
    """Per-pixel weight in [0, 1] (1 = keep) for a lung segmentation `lungs` (bool, image resolution)."""
    if not spec.needs_mask:
        return np.ones(np.shape(lungs), dtype=np.float32)
    tight = tight_mask(lungs)
    if not tight.any():
        raise NoUsableMaskError("empty lung mask: nothing to keep")
    if spec.mode == "tight":
        return tight.astype(np.float32)
    if spec.mode == "loose":
        base = convex_hull_per_lung(tight) if spec.hull else tight
        return dilate(base, spec.radius_in_px(spacing_mm)).astype(np.float32)
    edge = max(1.0, 0.01 * max(tight.shape))
    smooth = np.clip(gaussian_filter(tight.astype(np.float32), edge), 0.0, 1.0)
    return (spec.alpha + (1.0 - spec.alpha) * np.maximum(smooth, tight)).astype(np.float32)


def apply_prior(image: np.ndarray, weight: np.ndarray, fill: str = "zero") -> np.ndarray:
    """Blend an image with its fill value: `image * w + fill * (1 - w)`."""
    if image.shape != weight.shape:
        raise LungpriorError(f"image {image.shape} and mask {weight.shape} differ in size")
    value = float(image[weight >= 0.5].mean()) if fill == "mean" and (weight >= 0.5).any() else 0.0
    return (image * weight + value * (1.0 - weight)).astype(image.dtype, copy=False)
