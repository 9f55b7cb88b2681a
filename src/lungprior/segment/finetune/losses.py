"""Dice + BCE on the decoder's 256 x 256 logits, with "ignore" pixels left out of both terms.

An ignore plane (1 where the ground truth says "not annotated") removes those pixels from the loss: the
sigmoid probabilities and the targets are zeroed there before MONAI's Dice (so they add to neither its
numerator nor its denominator), and the BCE is the mean over the kept pixels only. Without ignored pixels both
terms equal the plain `DiceLoss(sigmoid=True, squared_pred=True)` + `BCEWithLogitsLoss()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss


class MaskedSegLoss:
    """`(logits (N, 1, H, W), targets (N, 1, H, W), ignore (N, 1, H, W) or None) -> Dice + BCE` (a scalar)."""

    def __init__(self) -> None:
        self.dice = DiceLoss(sigmoid=False, squared_pred=True, reduction="mean")

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
        logits = logits.float()
        targets = targets.to(logits.device, torch.float32)
        keep = torch.ones_like(logits) if ignore is None else 1.0 - ignore.to(logits.device, torch.float32)
        dice = self.dice(torch.sigmoid(logits) * keep, targets * keep)
        bce = F.binary_cross_entropy_with_logits(logits, targets, weight=keep, reduction="sum")
        return dice + bce / keep.sum().clamp_min(1.0)


def hard_iou(logits: torch.Tensor, targets: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) IoU of the thresholded logits with the targets over the kept pixels (the IoU head's target)."""
    keep = torch.ones_like(logits) if ignore is None else 1.0 - ignore.to(logits.device, torch.float32)
    hard = (logits > 0).float() * keep
    target = targets.to(logits.device, torch.float32) * keep
    inter = (hard * target).sum(dim=(1, 2, 3))
    union = hard.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) - inter
    return inter / union.clamp_min(1.0)
