"""Lightning callbacks: per-epoch metrics.csv and best.pth/best.json, and an atomically written last.ckpt."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lungprior.data.atomic import atomic_open, atomic_path, write_json

METRICS_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_dice", "val_iou", "val_hd95", "seconds")


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats (epoch as int); [] when the file does not exist."""
    file = Path(path)
    if not file.is_file():
        return []
    with open(file, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (int(r[k]) if k == "epoch" else float(r[k])) for k in METRICS_COLUMNS} for r in rows]


def write_metrics(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(METRICS_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in METRICS_COLUMNS})


class RunRecorder(L.Callback):
    """After each epoch: a metrics.csv row (1-based epoch), and best.pth + best.json when val Dice improves.

    best.pth is the plain state dict of the whole SAM-style network, loadable by `create_backend`. The best
    score so far travels in Lightning checkpoints, so a resumed run keeps choosing correctly. Without
    validation (`validate` False: cross-validation folds) every epoch is "best", so best.pth is the last one.
    """

    def __init__(self, out: str | os.PathLike[str], info: dict[str, Any], *, validate: bool = True) -> None:
        self.out = Path(out)
        self.info = info
        self.validate = validate
        self.best_dice = float("-inf")
        self.best_epoch = 0
        self._start = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"best_dice": self.best_dice, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_dice = float(state_dict["best_dice"])
        self.best_epoch = int(state_dict["best_epoch"])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = pl_module.epoch_train_loss() if hasattr(pl_module, "epoch_train_loss") else float("nan")
        val = dict(getattr(pl_module, "last_val", {}))
        if self.validate and not val:
            return
        if not self.validate:
            val = {f"val_{k}": float("nan") for k in ("dice", "iou", "hd95")}
        epoch = trainer.current_epoch + 1
        row = {"epoch": epoch, "train_loss": loss, **val, "seconds": round(time.perf_counter() - self._start, 3)}
        improved = not self.validate or val["val_dice"] > self.best_dice
        if improved:
            self.best_dice, self.best_epoch = val["val_dice"], epoch
        if not trainer.is_global_zero:
            return
        metrics_csv = self.out / "metrics.csv"
        rows = [r for r in read_metrics(metrics_csv) if r["epoch"] < epoch]
        write_metrics(metrics_csv, [*rows, row])
        if improved:
            state = {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()}
            with atomic_path(self.out / "best.pth", suffix=".pth") as tmp:
                torch.save(state, tmp)
            write_json(self.out / "best.json", {**self.info, "epoch": epoch, "metrics": val})


class LastCheckpoint(L.Callback):
    """Saves the full Lightning state to `last.ckpt` after every epoch, via a temporary file and a rename."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective: every rank calls it, rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
