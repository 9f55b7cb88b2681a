"""The segmentation backend interface and the shared SAM-style encode/decode logic."""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from lungprior.errors import LungpriorError
from lungprior.segment.preprocess import Transform, check_boxes


def decode_prompts(
    net: torch.nn.Module, embeddings: torch.Tensor, boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's prompt encoder + mask decoder, single-mask output: (1 or K, C, h, w) embeddings and (K, 4) boxes in
    model-input coordinates -> (K, 1, 256, 256) logits and (K, 1) IoU predictions. The one copy of this call
    (inference, fine-tuning and the ONNX export all use it)."""
    sparse, dense = net.prompt_encoder(points=None, boxes=boxes[:, None, :], masks=None)
    return net.mask_decoder(
        image_embeddings=embeddings,
        image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )


@runtime_checkable
class SegBackend(Protocol):
    """A box-prompted segmenter: preprocess -> encode (once per image) -> decode (K boxes) -> postprocess."""

    name: str
    input_size: int
    model: torch.nn.Module
    device: torch.device

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Transform]:
        """Float H x W image -> (3, S, S) model input and its geometry."""
        ...

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) inputs -> (B, C, h, w) image embeddings."""
        ...

    def decode(self, embedding: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, C, h, w) embedding and (K, 4) input-space boxes -> (K, 1, 256, 256) logits, (K, 1) IoU."""
        ...

    def postprocess(self, logits: torch.Tensor, transform: Transform) -> np.ndarray:
        """(K, 1, 256, 256) logits -> (K, H, W) probabilities at the original size."""
        ...

    def box_probabilities(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Float H x W image and (K, 4) boxes in original pixels -> (K, H, W) probabilities."""
        ...


class SamStyleBackend:
    """Encode/decode for networks with SAM's `image_encoder`, `prompt_encoder` and `mask_decoder`.

    In eval mode, `encode` and `decode` run without autograd; with `model.train()` they follow the
    caller's grad mode, so fine-tuning code can backpropagate through them.
    """

    name: str = ""
    input_size: int = 0

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device).eval()

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, Transform]:
        raise NotImplementedError

    def postprocess(self, logits: torch.Tensor, transform: Transform) -> np.ndarray:
        raise NotImplementedError

    def _grad_context(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self.model.training else torch.no_grad()

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) inputs -> (B, C, h, w) image embeddings."""
        size = self.input_size
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise LungpriorError(
                f"{self.name}: input batch of shape {tuple(batch.shape)}, expected (B, 3, {size}, {size})"
            )
        with self._grad_context():
            return self.model.image_encoder(batch.to(self.device, torch.float32))

    def decode(self, embedding: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's embedding and K boxes (input coordinates) -> (K, 1, 256, 256) logits, (K, 1) IoU."""
        if embedding.ndim != 4 or embedding.shape[0] != 1:
            raise LungpriorError(
                f"{self.name}: embedding of shape {tuple(embedding.shape)}, expected one image (1, C, h, w)"
            )
        if not isinstance(boxes, torch.Tensor):
            boxes = torch.from_numpy(check_boxes(boxes))
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
            raise LungpriorError(f"{self.name}: boxes of shape {tuple(boxes.shape)}, expected (K, 4)")
        with self._grad_context():
            return decode_prompts(self.model, embedding.to(self.device), boxes.to(self.device, torch.float32))

    def box_probabilities(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Float H x W image and (K, 4) [x0, y0, x1, y1] boxes in its pixels -> (K, H, W) probabilities.

        The encoder runs once; all boxes are decoded together. Threshold the result at 0.5 for masks.
        """
        tensor, transform = self.preprocess(image)
        input_boxes = torch.from_numpy(transform.boxes_to_input(boxes))
        with torch.no_grad():
            embedding = self.encode(tensor[None])
            logits, _ = self.decode(embedding, input_boxes)
        return self.postprocess(logits, transform)
