"""Prompt-free lung segmentation of one encoded image: coarse pass -> one box per lung -> refined pass.

The image is encoded once; every decode reuses the embedding and sends all of its boxes in one call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage as ndi

from lungprior.segment.base import SegBackend
from lungprior.segment.infer.engine import Engine
from lungprior.segment.infer.prompts import (
    SIDES,
    AutoPromptConfig,
    box_around,
    edges_to_pixels,
    grow_box,
    largest_component,
    lung_candidates,
    prior_boxes,
    whole_box,
)
from lungprior.segment.preprocess import Transform

#: The coarse candidates are found at this resolution (longest side), whatever the image size.
WORK_SIZE = 256


@dataclass
class LungPrediction:
    """A segmentation at the image's resolution and how it was prompted."""

    mask: np.ndarray  # bool (H, W): union of the per-prompt masks
    prob: np.ndarray  # float32 (H, W): highest probability over the prompts
    boxes: np.ndarray  # (K, 4) the final prompt boxes in original pixels
    prompt_source: str  # auto | auto+prior:<side> | prior | whole | csv
    stability: float = float("nan")  # auto: Dice of the final masks with a re-decode from boxes around them
    pred_iou: float = float("nan")  # the lowest IoU the model predicts for the final prompts' masks


def work_transform(transform: Transform, size: int = WORK_SIZE) -> Transform:
    """The same geometry but with outputs at most `size` pixels on the longest side."""
    h, w = transform.original_size
    r = min(1.0, size / max(h, w))
    return dataclasses.replace(transform, original_size=(max(1, round(h * r)), max(1, round(w * r))))


class Cascade:
    """Decodes boxes for one embedding with an engine and postprocesses them with the backend."""

    def __init__(self, engine: Engine, backend: SegBackend, config: AutoPromptConfig | None = None) -> None:
        self.engine = engine
        self.backend = backend
        self.config = config or AutoPromptConfig()

    def _decode(self, embedding: torch.Tensor, transform: Transform, boxes: np.ndarray
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.engine.decode(embedding, transform.boxes_to_input(boxes))

    def _logits(self, embedding: torch.Tensor, transform: Transform, boxes: np.ndarray) -> torch.Tensor:
        return self._decode(embedding, transform, boxes)[0]

    def _finish(self, decoded: tuple[torch.Tensor, torch.Tensor], transform: Transform, boxes: np.ndarray,
                source: str) -> LungPrediction:
        logits, iou = decoded
        probs = self.backend.postprocess(logits, transform)
        prob = probs.max(axis=0).astype(np.float32, copy=False)
        mask = prob > self.config.threshold
        if self.config.fill_holes:
            mask = ndi.binary_fill_holes(mask)
        pred_iou = float(iou.float().min()) if iou.numel() else float("nan")
        return LungPrediction(mask, prob, boxes, source, pred_iou=pred_iou)

    def boxes(self, embedding: torch.Tensor, transform: Transform, boxes: np.ndarray, source: str) -> LungPrediction:
        """Decode the given boxes (original pixels) together; the mask is the union of their masks."""
        boxes = np.asarray(boxes, dtype=np.float64)
        return self._finish(self._decode(embedding, transform, boxes), transform, boxes, source)

    def whole(self, embedding: torch.Tensor, transform: Transform) -> LungPrediction:
        """One whole-image box: the baseline that leaks into the mediastinum."""
        return self.boxes(embedding, transform, whole_box(transform.original_size), "whole")

    def auto(self, embedding: torch.Tensor, transform: Transform) -> LungPrediction:
        """The self-prompting cascade (see the module docstring and docs/segmentation.md)."""
        cfg = self.config
        shape = transform.original_size
        work = work_transform(transform)
        priors = prior_boxes(shape, cfg)
        coarse = self.backend.postprocess(self._logits(embedding, transform, priors), work) > cfg.threshold
        candidates = lung_candidates(coarse, cfg)
        boxes = priors.copy()
        fallback = []
        for side, candidate in enumerate(candidates):
            if candidate is None:
                fallback.append(SIDES[side])
            else:
                boxes[side] = edges_to_pixels(box_around(candidate, cfg.pad, cfg.pad_bottom), candidate.shape, shape)
        for _ in range(cfg.refine_steps - 1):
            refined = self.backend.postprocess(self._logits(embedding, transform, boxes), work) > cfg.threshold
            for side in range(len(SIDES)):
                lung = largest_component(refined[side])
                if lung is not None:
                    boxes[side] = edges_to_pixels(box_around(lung, cfg.pad, cfg.pad_bottom), lung.shape, shape)
        settled = None  # the decode of the final boxes, when growing stopped because no edge moved
        for _ in range(cfg.grow_steps):
            decoded = self._decode(embedding, transform, boxes)
            refined = self.backend.postprocess(decoded[0], work) > cfg.threshold
            moved = False
            for side in range(len(SIDES)):
                lung = largest_component(refined[side])
                grown = None if lung is None else grow_box(boxes[side], lung, shape, cfg.grow)
                if grown is not None:
                    boxes[side], moved = grown, True
            if not moved:
                settled = decoded
                break
        source = "auto" if not fallback else "prior" if len(fallback) == 2 else f"auto+prior:{fallback[0]}"
        if settled is None:
            final = self.boxes(embedding, transform, boxes, source)
        else:
            final = self._finish(settled, transform, np.asarray(boxes, dtype=np.float64), source)
        final.stability = self._stability(embedding, transform, final.mask, shape)
        return final

    def _stability(self, embedding: torch.Tensor, transform: Transform, mask: np.ndarray, shape: tuple) -> float:
        """Dice (at the work size) between a mask and a re-decode from padded boxes around its lungs."""
        work = work_transform(transform)
        small = cv2.resize(mask.astype(np.uint8), work.original_size[::-1], interpolation=cv2.INTER_NEAREST) > 0
        labels, count = ndi.label(small, structure=np.ones((3, 3), bool))
        if count == 0:
            return 0.0
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.argsort(-sizes)[:2] + 1
        cfg = self.config
        boxes = np.stack([edges_to_pixels(box_around(labels == k, cfg.pad, cfg.pad_bottom), small.shape, shape)
                          for k in keep])
        again = self.backend.postprocess(self._logits(embedding, transform, boxes), work) > self.config.threshold
        again = ndi.binary_fill_holes(again.any(axis=0))
        total = int(small.sum() + again.sum())
        return 1.0 if total == 0 else 2.0 * float((small & again).sum()) / total
