"""The Lightning module: weighted BCE, AdamW with a cosine schedule, validation macro AUROC over all ranks."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from lungprior.labels import FINDINGS


def per_finding_auroc(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUROC per finding (NaN where the labels hold only one class)."""
    out = {}
    for k, name in enumerate(FINDINGS):
        y = labels[:, k]
        out[name] = float(roc_auc_score(y, probs[:, k])) if 0 < y.sum() < len(y) else float("nan")
    return out


def macro_auroc(aucs: dict[str, float]) -> float:
    """Mean over the findings whose AUROC is defined (NaN when none is)."""
    values = [v for v in aucs.values() if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def undefined_auroc_message(aucs: dict[str, float]) -> str:
    """'validation AUROC undefined for Nodule, Edema (...); the macro validation AUROC is over 3 of 5 findings'."""
    undefined = [k for k, v in aucs.items() if math.isnan(v)]
    return (f"validation AUROC undefined for {', '.join(undefined)} (the validation split has no film with, or none "
            f"without, the finding); the macro validation AUROC is over {len(aucs) - len(undefined)} of "
            f"{len(aucs)} findings")


def unique_items(labels: np.ndarray, probs: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities with each dataset index once (a distributed sampler repeats a few to pad ranks)."""
    _, first = np.unique(index, return_index=True)
    return labels[first], probs[first]


def cosine_factor(epoch: int, epochs: int) -> float:
    """Cosine decay of the learning rate over `epochs` (1 at epoch 0)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


class ClassifierModule(L.LightningModule):
    """Wraps a backbone (`self.model`) for multi-label training on the five findings."""

    def __init__(
        self, model: nn.Module, pos_weight: torch.Tensor, *, lr: float, weight_decay: float, epochs: int
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.lr, self.weight_decay, self.epochs = lr, weight_decay, epochs
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.last_val_aurocs: dict[str, float] = {}
        self._warned: set[tuple[str, ...]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._outputs.clear()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y, index = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y), on_epoch=True, batch_size=len(x), sync_dist=True)
        self._outputs.append((torch.sigmoid(logits.float()).detach(), y.detach(), index.detach()))

    def on_validation_epoch_end(self) -> None:
        """Macro AUROC over the whole validation set: predictions gathered from every rank, duplicates dropped."""
        if not self._outputs:
            return
        probs = torch.cat([o[0] for o in self._outputs])
        labels = torch.cat([o[1] for o in self._outputs])
        index = torch.cat([o[2] for o in self._outputs])
        self._outputs.clear()
        if self.trainer.world_size > 1:  # the distributed sampler pads ranks to equal length: shapes agree
            probs, labels, index = (t.reshape(-1, *t.shape[2:]) for t in self.all_gather((probs, labels, index)))
        aucs = per_finding_auroc(*unique_items(labels.cpu().numpy(), probs.cpu().numpy(), index.cpu().numpy()))
        self.last_val_aurocs = aucs
        undefined = [k for k, v in aucs.items() if math.isnan(v)]
        if undefined and not self.trainer.sanity_checking and tuple(undefined) not in self._warned:
            self._warned.add(tuple(undefined))
            self.print(f"note: {undefined_auroc_message(aucs)}")  # stdout, on the lead process only
        self.log("val_auroc", macro_auroc(aucs), prog_bar=True, sync_dist=False)
        for name, value in aucs.items():
            self.log(f"val_auroc_{name}", value, sync_dist=False)

    def on_train_epoch_start(self) -> None:
        """Cosine learning rate as a function of the epoch: a resumed or extended run follows its current epochs."""
        factor = cosine_factor(self.current_epoch, self.epochs)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr * factor

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
