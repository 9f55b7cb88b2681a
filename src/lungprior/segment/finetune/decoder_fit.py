"""Fit a SAM-style network on lung prompts: the mask decoder on cached embeddings, or the whole network on inputs.

The training set is a flat list of prompts (one per lung per view): which view it belongs to, its box in
model-input space and its 256 x 256 target. Each step samples prompts, jitters their boxes (each side moves
by U(-inward, outward) of the box's size, so the model learns to reach a lung edge from a box a little
inside or outside it, as the automatic cascade's boxes are), decodes, and minimises Dice + BCE. With
`inputs` (the encoder trained: the full recipe), embeddings are computed with gradients under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from lungprior.segment.finetune.data import lung_targets
from lungprior.segment.preprocess import Transform


@dataclass
class Prompts:
    """Flat training prompts: view index (N,), input-space boxes (N, 4) and 256 x 256 uint8 targets (N, 256, 256)."""

    view: np.ndarray
    boxes: np.ndarray
    targets: np.ndarray

    @classmethod
    def empty(cls) -> Prompts:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 256, 256), np.uint8))

    def add(self, view: int, mask: np.ndarray, transform: Transform) -> None:
        """Append the per-lung prompts of one view's bool mask (nothing when the mask is empty)."""
        if not mask.any():
            return
        lungs = lung_targets(mask, transform)
        k = len(lungs.boxes)
        self.view = np.concatenate([self.view, np.full(k, view, np.int64)])
        self.boxes = np.concatenate([self.boxes, lungs.boxes])
        self.targets = np.concatenate([self.targets, lungs.low_res.astype(np.uint8)])

    def subset(self, views: np.ndarray) -> Prompts:
        keep = np.isin(self.view, views)
        return Prompts(self.view[keep], self.boxes[keep], self.targets[keep])


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 12
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    jitter_in: float = 0.04
    jitter_out: float = 0.10
    train_prompt_encoder: bool = True
    encoder_lr_factor: float = 0.1  # full recipe: the encoder learns at this fraction of lr


def jitter(boxes: np.ndarray, rng: np.random.Generator, inward: float, outward: float, limit: float) -> np.ndarray:
    """Move each box side by U(-inward, outward) of the box's width/height (outward positive), clipped."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    move = rng.uniform(-inward, outward, size=boxes.shape) * size
    out = boxes + move * np.array([-1.0, -1.0, 1.0, 1.0])
    out = np.clip(out, 0.0, limit)
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1.0)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1.0)
    return np.clip(out, 0.0, limit)


def decode(net: torch.nn.Module, embeddings: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N, 1, 256, 256) logits for N prompts with one embedding each (LiteMedSAM's batched decoder)."""
    sparse, dense = net.prompt_encoder(points=None, boxes=boxes[:, None, :], masks=None)
    logits, _ = net.mask_decoder(
        image_embeddings=embeddings, image_pe=net.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False,
    )
    return logits


def fit(
    net: torch.nn.Module, prompts: Prompts, settings: FitSettings, *, seed: int, input_size: int,
    embeddings: torch.Tensor | None = None, inputs: torch.Tensor | None = None, device: torch.device | None = None,
    amp: bool = False,
) -> list[float]:
    """Train `net` in place on `prompts`; returns the mean loss of each epoch.

    `embeddings` (V, C, h, w): the frozen encoder's, indexed by `prompts.view`; or `inputs` (V, 1, S, S) model
    inputs, with which the image encoder is trained too.
    """
    if (embeddings is None) == (inputs is None):
        raise ValueError("give exactly one of embeddings and inputs")
    device = device or torch.device("cpu")
    full = inputs is not None
    net.to(device).train()
    net.image_encoder.requires_grad_(full)
    if not full:
        net.image_encoder.eval()
    net.prompt_encoder.requires_grad_(settings.train_prompt_encoder)
    net.mask_decoder.requires_grad_(True)
    groups = [{"params": [p for p in net.mask_decoder.parameters()], "lr": settings.lr}]
    if settings.train_prompt_encoder:
        groups.append({"params": list(net.prompt_encoder.parameters()), "lr": settings.lr})
    if full:
        groups.append({"params": list(net.image_encoder.parameters()), "lr": settings.lr * settings.encoder_lr_factor})
    optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(prompts.view) / settings.batch_size)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in groups], total_steps=settings.epochs * steps_per_epoch, pct_start=0.1,
    )
    dice_loss = DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
    rng = np.random.default_rng([int(seed), 7])
    history = []
    for _ in range(settings.epochs):
        order = rng.permutation(len(prompts.view))
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            boxes = jitter(prompts.boxes[idx], rng, settings.jitter_in, settings.jitter_out, float(input_size))
            box_t = torch.as_tensor(boxes, dtype=torch.float32, device=device)
            target = torch.as_tensor(prompts.targets[idx], device=device).float()[:, None]
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                if full:
                    views, inverse = np.unique(prompts.view[idx], return_inverse=True)
                    x = inputs[torch.as_tensor(views)].to(device, torch.float32).expand(-1, 3, -1, -1)
                    emb = net.image_encoder(x)[torch.as_tensor(inverse, device=device)]
                else:
                    emb = embeddings[torch.as_tensor(prompts.view[idx])].to(device, torch.float32)
                logits = decode(net, emb, box_t)
            logits = logits.float()
            loss = dice_loss(logits, target) + F.binary_cross_entropy_with_logits(logits, target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / max(1, len(order)))
    net.eval()
    return history
