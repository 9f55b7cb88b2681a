"""Dice and IoU of two lung masks: the one definition every evaluation, benchmark and test uses."""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2 |A ∩ B| / (|A| + |B|) of two masks (anything non-zero is in); 1.0 when both are empty."""
    a, b = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two masks; 1.0 when both are empty."""
    a, b = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union
