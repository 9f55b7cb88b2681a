"""Laterality-preserving augmentation (used only when the image encoder is trained).

Intensity jitter (gamma, contrast, Gaussian noise) on the image; a small affine (rotation within 5 degrees,
scale within 5 %) applied identically to the image and the per-lung masks. No left-right flip: the patient's
right lung must stay on the image's left. MONAI transforms, reseeded per sample so runs are reproducible.
"""

from __future__ import annotations

import math

import torch


class LungAugment:
    """`(image (3, S, S), masks (K, S, S), seed) -> (image, masks)`; the same seed gives the same result."""

    def __init__(self, degrees: float = 5.0, scale: float = 0.05) -> None:
        from monai.transforms import (  # imported here: only runs that train the encoder augment
            Compose,
            RandAdjustContrastd,
            RandAffined,
            RandGaussianNoised,
            RandScaleIntensityFixedMeand,
        )

        self.transform = Compose(
            [
                RandAffined(
                    keys=("image", "masks"),
                    prob=1.0,
                    rotate_range=(math.radians(degrees),),
                    scale_range=(scale, scale),
                    mode=("bilinear", "nearest"),
                    padding_mode="zeros",
                ),
                RandAdjustContrastd(keys="image", prob=0.5, gamma=(0.8, 1.25)),
                RandScaleIntensityFixedMeand(keys="image", prob=0.5, factors=0.1),
                RandGaussianNoised(keys="image", prob=0.5, std=0.02),
            ]
        )

    def __call__(self, image: torch.Tensor, masks: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.transform.set_random_state(seed=seed % (2**32))
        out = self.transform({"image": image[:1].float(), "masks": masks.float()})
        grey = torch.as_tensor(out["image"]).clamp(0.0, 1.0)
        return grey.expand(3, -1, -1).contiguous(), (torch.as_tensor(out["masks"]) > 0.5).to(torch.uint8)


def boxes_from_masks(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, S, S) masks -> (K, 4) [x0, y0, x1, y1] boxes (float32) and (K,) validity (non-empty masks)."""
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    valid = rows.any(dim=1)
    size = masks.shape[-1]
    idx = torch.arange(size, device=masks.device)
    big = torch.full_like(idx, size)

    def first_last(hits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.where(hits, idx, big).min(dim=1).values
        high = torch.where(hits, idx, -1).max(dim=1).values
        return low, high

    y0, y1 = first_last(rows)
    x0, x1 = first_last(cols)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(valid[:, None], boxes, torch.zeros_like(boxes)), valid
