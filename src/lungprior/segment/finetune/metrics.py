"""Lung segmentation metrics (MONAI Dice, IoU, 95th-percentile Hausdorff) and split-level evaluation.

Metrics compare the union of the per-lung predictions with the whole ground-truth lung mask at the image's
original resolution; HD95 is in original pixels. Pixels the ground truth marks "ignore" (grey 127) count
neither way (as in `lungprior segeval`). An empty prediction has an undefined HD95: it is scored as the image
diagonal (the worst possible distance), so a failure is never averaged away.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU
from rich.progress import track

from lungprior.console import plain_console
from lungprior.data.ignore import drop_ignored
from lungprior.errors import LungpriorError
from lungprior.segment.base import SegBackend
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.data import TrainingPair, lung_boxes, read_pair
from lungprior.segment.infer.predictor import LungPredictor

METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "hd95")


class LungMetrics:
    """Per-image Dice, IoU and HD95 of a predicted lung union against the ground truth (MONAI metrics)."""

    def __init__(self) -> None:
        self.dice = DiceMetric(include_background=True, reduction="none")
        self.iou = MeanIoU(include_background=True, reduction="none")
        self.hd95 = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")

    def __call__(
        self, pred: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, ignore: np.ndarray | None = None
    ) -> dict[str, float]:
        pred_a, truth_a = _bool_array(pred), _bool_array(truth)
        if pred_a.shape != truth_a.shape or pred_a.ndim != 2:
            raise LungpriorError(f"prediction {pred_a.shape} and ground truth {truth_a.shape} differ or are not 2-D")
        pred_a, truth_a = drop_ignored(pred_a, truth_a, ignore)
        p = torch.from_numpy(pred_a).float()[None, None]
        t = torch.from_numpy(truth_a).float()[None, None]
        with warnings.catch_warnings():  # MONAI warns about its own deprecated arguments and empty masks
            warnings.simplefilter("ignore")
            values = {
                "dice": float(self.dice(p, t).item()),
                "iou": float(self.iou(p, t).item()),
                "hd95": float(self.hd95(p, t).item()),
            }
        for metric in (self.dice, self.iou, self.hd95):
            metric.reset()
        if not math.isfinite(values["hd95"]):
            values["hd95"] = float(math.hypot(*t.shape[-2:]))
        return values


def _bool_array(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(bool)
    return np.asarray(value, dtype=bool)


def mean_metrics(rows: list[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (NaN when there are none)."""
    return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan") for k in METRIC_NAMES}


def evaluate_segmentation(
    backend: SegBackend,
    pairs: list[TrainingPair],
    boxes: str | Mapping[str, np.ndarray] = "gt",
    *,
    cache: EmbeddingCache | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Mean Dice, IoU and HD95 of `backend` over `pairs`, one prompt per lung, segmented by `LungPredictor`
    (border crop, the union of the lungs' masks, holes filled) as `lungprior segment` would with these boxes.

    `boxes` "gt" takes one box per lung from the ground-truth mask's two largest components; a mapping
    image_id -> (K, 4) boxes in original pixels supplies them instead. Pass `cache` only when the backend's
    image encoder is the one the cache was built with (zero-shot, or fine-tuned with a frozen encoder).
    Unreadable pairs are recorded under "errors" and skipped.
    """
    if not (boxes == "gt" or isinstance(boxes, Mapping)):
        raise LungpriorError(f"boxes {boxes!r}: use 'gt' or a mapping image_id -> boxes")
    metrics = LungMetrics()
    predictor = LungPredictor(backend, cache=cache, store=True)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    was_training = backend.model.training
    backend.model.eval()
    bar = track(
        pairs, description="evaluating", disable=not progress, transient=True, console=plain_console(stderr=True)
    )
    try:
        for pair in bar:
            try:
                image, mask, ignore = read_pair(pair)
                prompts = lung_boxes(mask) if boxes == "gt" else _given_boxes(boxes, pair)
                predictor.set_film(image, pair.image_id, pair.image)
                pred = predictor.predict("boxes", prompts, source="gt")
            except LungpriorError as exc:
                errors.append({"image_id": pair.image_id, "error": str(exc)})
                continue
            rows.append({"image_id": pair.image_id, **metrics(pred.mask, mask, ignore)})
    finally:
        backend.model.train(was_training)
    return {
        "n": len(rows),
        **mean_metrics(rows),
        "resolution": "original",
        "hd95_unit": "pixels",
        "per_image": rows,
        "errors": errors,
    }


def _given_boxes(boxes: Mapping[str, np.ndarray], pair: TrainingPair) -> np.ndarray:
    if pair.image_id not in boxes:
        raise LungpriorError(f"{pair.image_id}: no boxes given for this image")
    return np.asarray(boxes[pair.image_id], dtype=np.float64)
