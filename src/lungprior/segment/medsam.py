"""MedSAM backend: SAM ViT-B at 1024x1024 (segment-anything) with a user-supplied MedSAM checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lungprior.errors import LungpriorError
from lungprior.extras import require
from lungprior.segment.base import SamStyleBackend
from lungprior.segment.preprocess import Transform, postprocess_stretch, preprocess_stretch
from lungprior.segment.registry import register_backend
from lungprior.segment.weights import load_state_dict_flexible

HOW_TO_GET = (
    "download medsam_vit_b.pth (the MedSAM ViT-B checkpoint linked from the bowang-lab/MedSAM README) "
    "and pass its path as the checkpoint"
)


class MedSAMBackend(SamStyleBackend):
    """MedSAM: 1024x1024 stretched input without SAM's pixel normalisation; 64x64x256 embeddings."""

    name = "medsam"
    input_size = 1024

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Transform]:
        return preprocess_stretch(image, self.input_size)

    def postprocess(self, logits: torch.Tensor, transform: Transform) -> np.ndarray:
        return postprocess_stretch(logits, transform)


def build_medsam_network() -> torch.nn.Module:
    """SAM ViT-B with random weights (segment-anything's `sam_model_registry["vit_b"]`)."""
    segment_anything = require("segment_anything", "the medsam backend needs it")
    return segment_anything.sam_model_registry["vit_b"](checkpoint=None)


@register_backend("medsam")
def create_medsam(checkpoint: str | os.PathLike[str] | None, device: torch.device) -> MedSAMBackend:
    """MedSAM ViT-B from `checkpoint` (plain, {"model": ...} or "module."-prefixed state dict)."""
    if checkpoint is None:
        raise LungpriorError(f"the medsam backend needs a checkpoint: {HOW_TO_GET}")
    path = Path(checkpoint)
    if not path.is_file():
        raise LungpriorError(f"{path}: MedSAM checkpoint not found; {HOW_TO_GET}")
    net = build_medsam_network()
    load_state_dict_flexible(net, path)
    return MedSAMBackend(net, device)
