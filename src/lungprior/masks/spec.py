"""How an image is masked: the spatial prior as a dial, and applying it to pixels.

From no prior to the strongest: original, prior-loss (original pixels, attention outside the loose mask
penalised in training), soft, bbox, loose, crop, tight; and the control `nolung` (the lungs removed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from lungprior.errors import LungpriorError, NoUsableMaskError
from lungprior.masks.ops import convex_hull_per_lung, dilate, tight_mask
from lungprior.masks.regions import bbox_per_lung, box_mask, crop_box

MODES: tuple[str, ...] = ("original", "tight", "loose", "soft", "nolung", "bbox", "crop", "prior-loss")
CONTROL_MODES: tuple[str, ...] = ("nolung",)  # controls: reported, never picked or recommended as a prior
#: Modes whose radius (dilation, box margin or penalty mask) defaults to DEFAULT_RADIUS_MM when none is given.
RADIUS_MODES: tuple[str, ...] = ("loose", "bbox", "crop", "prior-loss")
DEFAULT_RADIUS_MM = 10.0
DEFAULT_ALPHA = 0.3
DEFAULT_PRIOR_WEIGHT = 1.0


@dataclass(frozen=True)
class MaskSpec:
    """A masking mode and its parameters.

    - tight: the cleaned lung outline;
    - loose: tight dilated by `radius_mm` (or `radius_px` when the spacing is unknown), optionally the convex
      hull per lung first (`hull`), keeping perihilar and peripheral context;
    - soft: lungs kept, the outside attenuated to `alpha` (0 = tight, 1 = original), with a smooth edge;
    - nolung: the lungs removed, the rest kept: the complement of tight, or of loose when a radius is given
      (a model that still scores well on these films uses something other than lung pathology);
    - bbox: each lung's bounding box, grown by the radius, kept;
    - crop: the image cropped to the bounding box of both lungs grown by the radius, then resized (more
      pixels on the lungs at the same input size);
    - prior-loss: the original pixels; training penalises input-gradient energy outside the loose mask of
      the radius, with weight `prior_weight`;
    - fill: what replaces masked-out pixels: "zero" or the image's "mean" inside the kept region.
    """

    mode: str = "original"
    radius_mm: float | None = None
    radius_px: float | None = None
    hull: bool = False
    alpha: float = DEFAULT_ALPHA
    fill: str = "zero"
    prior_weight: float = DEFAULT_PRIOR_WEIGHT

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LungpriorError(f"unknown mask mode {self.mode!r}; choose from {', '.join(MODES)}")
        if self.fill not in ("zero", "mean"):
            raise LungpriorError(f"unknown fill {self.fill!r}; choose 'zero' or 'mean'")
        if not 0.0 <= self.alpha <= 1.0:
            raise LungpriorError(f"soft-mask alpha must be in [0, 1], got {self.alpha}")
        if not (np.isfinite(self.prior_weight) and self.prior_weight >= 0):
            raise LungpriorError(f"--prior-weight must be >= 0, got {self.prior_weight}")
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
            raise LungpriorError(
                f"{self.mode} mask radius given in mm but the image's pixel spacing is unknown; pass radius_px"
            )
        raise LungpriorError(f"{self.mode} mask needs radius_mm (with a known pixel spacing) or radius_px")

    def with_default_radius(self) -> MaskSpec:
        """This spec, with DEFAULT_RADIUS_MM where its mode uses a radius and none is given."""
        if self.mode in RADIUS_MODES and not self.has_radius:
            return replace(self, radius_mm=DEFAULT_RADIUS_MM)
        return self

    @property
    def has_radius(self) -> bool:
        return self.radius_mm is not None or self.radius_px is not None

    def key(self) -> str:
        """A stable text key of the prior (for run names): the pixel key plus the penalty weight."""
        if self.mode == "prior-loss":
            return f"prior-loss-w{self.prior_weight:g}-{self._radius_text()}{'-hull' if self.hull else ''}"
        return self.pixel_key()

    def pixel_key(self) -> str:
        """A stable text key of the parameters that change the cached pixels and masks (for caches)."""
        if self.mode == "original":
            return "original"
        fill = "" if self.fill == "zero" else f"-fill{self.fill}"
        if self.mode == "tight":
            return f"tight{fill}"
        if self.mode == "soft":
            return f"soft-a{self.alpha:g}{fill}"
        if self.mode == "nolung":
            base = f"-{self._radius_text()}{'-hull' if self.hull else ''}" if self.has_radius else ""
            return f"nolung{base}{fill}"
        if self.mode in ("bbox", "crop"):
            return f"{self.mode}-{self._radius_text()}{fill if self.mode == 'bbox' else ''}"
        if self.mode == "prior-loss":
            return f"prior-loss-{self._radius_text()}{'-hull' if self.hull else ''}"
        return f"loose-{self._radius_text()}{'-hull' if self.hull else ''}{fill}"

    def _radius_text(self) -> str:
        return f"{self.radius_mm:g}mm" if self.radius_mm is not None else f"{self.radius_px or 0:g}px"


def prior_weight(lungs: np.ndarray, spec: MaskSpec, spacing_mm: float | None = None) -> np.ndarray:
    """Per-pixel weight in [0, 1] (1 = keep) for a lung segmentation `lungs` (bool, image resolution)."""
    if not spec.needs_mask:
        return np.ones(np.shape(lungs), dtype=np.float32)
    tight = tight_mask(lungs)
    if not tight.any():
        raise NoUsableMaskError("empty lung mask: nothing to keep")
    if spec.mode == "tight":
        return tight.astype(np.float32)
    if spec.mode in ("loose", "nolung"):
        base = convex_hull_per_lung(tight) if spec.hull else tight
        kept = dilate(base, spec.radius_in_px(spacing_mm)) if spec.mode == "loose" or spec.has_radius else base
        return (kept if spec.mode == "loose" else ~kept).astype(np.float32)
    if spec.mode == "bbox":
        return bbox_per_lung(tight, spec.radius_in_px(spacing_mm)).astype(np.float32)
    if spec.mode in ("crop", "prior-loss"):  # pixels unchanged here: `crop_region` / `penalty_region` act
        return np.ones(tight.shape, dtype=np.float32)
    edge = max(1.0, 0.01 * max(tight.shape))
    smooth = np.clip(gaussian_filter(tight.astype(np.float32), edge), 0.0, 1.0)
    return (spec.alpha + (1.0 - spec.alpha) * np.maximum(smooth, tight)).astype(np.float32)


def crop_region(lungs: np.ndarray, spec: MaskSpec, spacing_mm: float | None = None) -> tuple[slice, slice] | None:
    """The crop box of a `crop` spec (both lungs' bounding box grown by the radius); None for other modes."""
    if spec.mode != "crop":
        return None
    return crop_box(tight_mask(lungs), spec.radius_in_px(spacing_mm))


def penalty_region(lungs: np.ndarray, spec: MaskSpec, spacing_mm: float | None = None) -> np.ndarray | None:
    """Where a `prior-loss` spec allows attention (the loose mask of its radius); None for other modes."""
    if spec.mode != "prior-loss":
        return None
    tight = tight_mask(lungs)
    if not tight.any():
        raise LungpriorError("empty lung mask: nothing to keep")
    base = convex_hull_per_lung(tight) if spec.hull else tight
    return dilate(base, spec.radius_in_px(spacing_mm))


def kept_region(lungs: np.ndarray, spec: MaskSpec, spacing_mm: float | None = None) -> np.ndarray:
    """The region a prior keeps or favours, as bool at image resolution (for outlines in figures)."""
    box = crop_region(lungs, spec, spacing_mm)
    if box is not None:
        return box_mask(np.shape(lungs), box)
    allowed = penalty_region(lungs, spec, spacing_mm)
    if allowed is not None:
        return allowed
    return prior_weight(lungs, spec, spacing_mm) >= 0.5


def apply_prior(image: np.ndarray, weight: np.ndarray, fill: str = "zero") -> np.ndarray:
    """Blend an image with its fill value: `image * w + fill * (1 - w)`."""
    if image.shape != weight.shape:
        raise LungpriorError(f"image {image.shape} and mask {weight.shape} differ in size")
    value = float(image[weight >= 0.5].mean()) if fill == "mean" and (weight >= 0.5).any() else 0.0
    return (image * weight + value * (1.0 - weight)).astype(image.dtype, copy=False)
