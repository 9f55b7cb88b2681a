"""Per-epoch record of a run (metrics, learning rate, wall time, images), kept in its checkpoints.

The record travels inside `last.ckpt`, so a resumed run reports the epochs of every session.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lungprior.labels import FINDINGS


class RunHistory(Callback):
    """Record one row per finished epoch: epoch, metrics, lr, epoch/train/val seconds, train images."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self._t0 = self._val_t0 = 0.0
        self._val_seconds = 0.0
        self._images = 0

    @property
    def state_key(self) -> str:
        return "lungprior.RunHistory"

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._val_seconds = 0.0
        self._images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._images += len(batch[0]) * trainer.world_size

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_seconds += time.perf_counter() - self._val_t0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._t0
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch}
        for name in ("train_loss", "val_loss", "val_auroc", *(f"val_auroc_{f}" for f in FINDINGS)):
            row[name] = _float(metrics.get(name))
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")
        row["epoch_seconds"] = seconds
        row["train_seconds"] = seconds - self._val_seconds
        row["train_images"] = self._images
        self.epochs = [e for e in self.epochs if e["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(e) for e in self.epochs]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = [dict(e) for e in state_dict.get("epochs", [])]

    def best(self) -> dict[str, Any] | None:
        """The first epoch with the highest finite val_auroc (what ModelCheckpoint keeps as best)."""
        scored = [e for e in self.epochs if not math.isnan(e["val_auroc"])]
        return max(scored, key=lambda e: (e["val_auroc"], -e["epoch"])) if scored else None


def _float(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item())
    return float(value)
