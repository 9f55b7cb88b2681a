"""Using a finished run: its best model (`load_run`) and its probabilities on a split (`predict_split`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from lungprior.checkpoints import load_tensor_file
from lungprior.classify.backbone import create_backbone
from lungprior.classify.config import TrainConfig
from lungprior.classify.data import make_dataset
from lungprior.errors import LungpriorError, one_line
from lungprior.labels import FINDINGS, LABELS
from lungprior.layout import CONFIG, MODEL, score_column


def load_run(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, TrainConfig]:
    """The run's best model (weights from `model.pt`, on the CPU, in eval mode) and its config."""
    run = Path(run_dir)
    cfg = TrainConfig.from_json(run / CONFIG)
    weights = run / MODEL
    if not weights.is_file():
        raise LungpriorError(f"{run}: no {MODEL}, the run has not finished; rerun `lungprior train` with its settings")
    model, _ = create_backbone(cfg.backbone, "none", cfg.image_size)
    redo = f"rerun `lungprior train` into a new folder with the settings in {run / CONFIG}"
    state = load_tensor_file(weights, "run weights file", redo)
    try:
        model.load_state_dict(state)
    except Exception as exc:
        reason = one_line(exc, 200)
        raise LungpriorError(f"{weights}: the run weights do not fit {cfg.backbone} ({reason}); {redo}") from None
    return model.eval(), cfg


def predict_split(
    run_dir: str | os.PathLike[str],
    split: str = "test",
    batch_size: int = 64,
    *,
    device: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Probabilities of the run's best model on a split of its manifest, same masking as in training.

    Columns: image_id, patient_id, the six label columns (five findings + "No Finding") and `p_<finding>`
    (sigmoid) for the five findings, one row per image in manifest order.
    """
    if batch_size < 1:
        raise LungpriorError(f"batch size must be at least 1, got {batch_size}")
    cfg = TrainConfig.from_json(Path(run_dir) / CONFIG)
    ds = make_dataset(cfg, split, train=False, progress=progress)  # first: a cache build may fork workers
    model, _ = load_run(run_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    chunks = []
    with torch.inference_mode():
        for x, _, _ in DataLoader(ds, batch_size=batch_size, shuffle=False):
            chunks.append(torch.sigmoid(model(x.to(dev)).float()).cpu().numpy())
    probs = np.concatenate(chunks) if chunks else np.zeros((0, len(FINDINGS)), dtype=np.float32)
    out = ds.frame.loc[:, ["image_id", "patient_id", *LABELS]].reset_index(drop=True).copy()
    for k, name in enumerate(FINDINGS):
        out[score_column(name)] = probs[:, k]
    return out
