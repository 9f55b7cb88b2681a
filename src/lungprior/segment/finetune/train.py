"""`finetune(cfg)`: zero-shot baseline, Lightning training, best checkpoint, test comparison; resumable.

Training is `fit.train_model` (shared with benchmarks/segment_cv.py). Run folder (OUT): config.json,
zeroshot.json (base weights on val), replay/ (the rehearsal films of `--replay auto`), metrics.csv, best.pth +
best.json, checkpoints/last.ckpt, cache/ (frozen-encoder embeddings of every view), skipped.json (unusable
pairs, if any) and, written last, test_metrics.json (zero-shot vs fine-tuned on the test split). A rerun with
the same config resumes from last.ckpt; a finished run is not retrained; another config in the same OUT is refused.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

import lungprior
from lungprior.data.atomic import write_json
from lungprior.data.claim import claim_folder
from lungprior.errors import LungpriorError
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.config import FinetuneConfig, resolve_accelerator, resolve_freeze, resolve_precision
from lungprior.segment.finetune.data import load_pairs, replay_folder, with_replay
from lungprior.segment.finetune.dataset import check_pairs
from lungprior.segment.finetune.fit import train_model
from lungprior.segment.finetune.metrics import METRIC_NAMES, evaluate_segmentation
from lungprior.segment.infer.engine import create_engine
from lungprior.segment.registry import create_backend
from lungprior.segment.weights import LITEMEDSAM_SHA256, bundled_litemedsam_weights, sha256_file


@dataclass
class FinetuneResult:
    """What a run produced: best epoch and validation metrics, test comparison, and the files."""

    out: Path
    best_epoch: int
    best_val: dict[str, float]
    test: dict[str, dict[str, float]]
    zeroshot_val: dict[str, float]
    freeze_encoder: bool
    already_finished: bool
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)
    partial: bool = False  # True in the extra processes of a multi-device (DDP) run: rank 0 reports


def finetune(cfg: FinetuneConfig, *, progress: bool = False) -> FinetuneResult:
    """Fine-tune `cfg.backend` on `cfg.data` and write the run folder `cfg.out` (see the module docstring)."""
    start = time.perf_counter()
    out = Path(cfg.out)
    claim_folder(  # OUT/config.json: written by the lead process, or checked against `cfg`
        out, "config.json", cfg.to_dict(), "a fine-tuning run", ignore=("out",),
        upgrade=lambda stored: FinetuneConfig.from_dict(stored).to_dict(), record=rank_zero_only.rank == 0,
    )
    if (out / "test_metrics.json").is_file() and (out / "best.pth").is_file():
        return _result(out, start, already_finished=True)
    accelerator = resolve_accelerator(cfg.accelerator)
    freeze = resolve_freeze(cfg.freeze_encoder, accelerator)
    precision = resolve_precision(cfg.precision, accelerator)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    weights_path, weights_sha = base_weights(cfg)
    device = _local_device(accelerator)
    backend = create_backend(cfg.backend, cfg.checkpoint, device)
    cache = EmbeddingCache(out / "cache", backend, encoder=create_engine(backend).encode) if freeze else None

    epochs, views = cfg.budget(accelerator)
    replay = replay_folder(cfg.replay, cfg.data, cfg.out, progress=progress)
    train_pairs = with_replay(load_pairs(cfg.data, "train")[: cfg.max_train], replay, cfg.replay_max)
    val_pairs = load_pairs(cfg.data, "val")
    train_pairs, train_errors = check_pairs(train_pairs, cache, views=views, seed=cfg.seed, progress=progress)
    val_pairs, val_errors = check_pairs(val_pairs, cache, progress=progress)
    if train_errors or val_errors:
        write_json(out / "skipped.json", train_errors + val_errors)
    for split, pairs in (("train", train_pairs), ("val", val_pairs)):
        if not pairs:
            raise LungpriorError(f"{cfg.data}: no usable {split} image–mask pairs")

    if rank_zero_only.rank == 0 and not (out / "zeroshot.json").is_file():
        zero = evaluate_segmentation(backend, val_pairs, cache=cache, progress=progress)
        write_json(out / "zeroshot.json", {"split": "val", "backend": cfg.backend, **zero})

    info = {
        "backend": cfg.backend,
        "base_weights": str(weights_path),
        "base_weights_sha256": weights_sha,
        "freeze_encoder": freeze,
        "epochs": epochs,
        "views": views,
        "metric_resolution": "original",
        "hd95_unit": "pixels",
        "config": cfg.to_dict(),
        "lungprior_version": lungprior.__version__,
    }
    trainer = train_model(
        cfg, backend, train_pairs, val_pairs, cache=cache, accelerator=accelerator, precision=precision, info=info,
        progress=progress,
    )
    if not trainer.is_global_zero:
        return _result(out, start, already_finished=False, partial=True)
    if not (out / "best.pth").is_file():
        raise LungpriorError(f"{out}: training ended without a best checkpoint")

    test_pairs = load_pairs(cfg.data, "test")
    base = create_backend(cfg.backend, cfg.checkpoint, device)
    tuned = create_backend(cfg.backend, out / "best.pth", device)
    test = {
        "split": "test",
        "zero_shot": evaluate_segmentation(base, test_pairs, cache=cache, progress=progress),
        "finetuned": evaluate_segmentation(tuned, test_pairs, cache=cache, progress=progress),
    }
    write_json(out / "test_metrics.json", test)
    return _result(out, start, already_finished=False)


def base_weights(cfg: FinetuneConfig) -> tuple[Path, str]:
    """Path and SHA-256 of the weights fine-tuning starts from (bundled LiteMedSAM when none given)."""
    if cfg.checkpoint is None:
        if cfg.backend == "litemedsam":
            return bundled_litemedsam_weights(), LITEMEDSAM_SHA256
        raise LungpriorError(f"--backend {cfg.backend} needs --checkpoint (no bundled weights)")
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise LungpriorError(f"--checkpoint {path}: file not found")
    return path, sha256_file(path)


def _local_device(accelerator: str) -> torch.device:
    """Device for caching and evaluation: this process's GPU under DDP (LOCAL_RANK), else the CPU."""
    if accelerator != "gpu":
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _result(out: Path, start: float, *, already_finished: bool, partial: bool = False) -> FinetuneResult:
    best = _read_json(out / "best.json") if (out / "best.json").is_file() else {}
    test = {} if partial else _read_json(out / "test_metrics.json")
    zero = _read_json(out / "zeroshot.json") if (out / "zeroshot.json").is_file() else {}
    names = ("config.json", "zeroshot.json", "metrics.csv", "best.pth", "best.json", "test_metrics.json")
    files = {n: out / n for n in names if (out / n).is_file()}
    return FinetuneResult(
        out=out,
        best_epoch=int(best.get("epoch", 0)),
        best_val=dict(best.get("metrics", {})),
        test={k: {m: float(test[k][m]) for m in METRIC_NAMES} for k in ("zero_shot", "finetuned") if k in test},
        zeroshot_val={m: float(zero[m]) for m in METRIC_NAMES if m in zero},
        freeze_encoder=bool(best.get("freeze_encoder", False)),
        already_finished=already_finished,
        seconds=time.perf_counter() - start,
        files=files,
        partial=partial,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LungpriorError(f"{path}: cannot read ({exc})") from None

