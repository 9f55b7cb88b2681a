"""Multi-label classification of the five findings on original, tight, loose or soft-masked images.

- `TrainConfig` + `train(cfg) -> TrainResult`: one Lightning run in RUN_DIR (resumable, see `run`);
- `load_run(run_dir) -> (model, cfg)` and `predict_split(run_dir, split) -> DataFrame` for finished runs;
- `make_dataset(cfg, split, train=False)`: items `(image (1, S, S), labels (5,), index)`, with
  `dataset.frame` (the split's manifest rows), `dataset.raw_image(i)` and `dataset.lung_mask(i)`.

The names load on first use, so that reading `TrainConfig`'s defaults (the CLI, the experiment file) does not
import torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lungprior.classify.backbone import (
        WeightsReport,
        check_backbone,
        create_backbone,
        load_weights_file,
        normalisation,
    )
    from lungprior.classify.cache import CACHE_VERSION, CacheInfo, ensure_cache
    from lungprior.classify.config import TrainConfig
    from lungprior.classify.data import ClassifyDataset, make_dataset, prepare
    from lungprior.classify.inference import load_run, predict_split
    from lungprior.classify.run import TrainResult
    from lungprior.classify.training import train

_WHERE: dict[str, str] = {
    "WeightsReport": "backbone", "check_backbone": "backbone", "create_backbone": "backbone",
    "load_weights_file": "backbone", "normalisation": "backbone",
    "CACHE_VERSION": "cache", "CacheInfo": "cache", "ensure_cache": "cache",
    "TrainConfig": "config",
    "ClassifyDataset": "data", "make_dataset": "data", "prepare": "data",
    "load_run": "inference", "predict_split": "inference",
    "TrainResult": "run",
    "train": "training",
}

__all__ = [
    "CACHE_VERSION",
    "CacheInfo",
    "ClassifyDataset",
    "TrainConfig",
    "TrainResult",
    "WeightsReport",
    "check_backbone",
    "create_backbone",
    "ensure_cache",
    "load_run",
    "load_weights_file",
    "make_dataset",
    "normalisation",
    "predict_split",
    "prepare",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lungprior.classify' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lungprior.classify.{_WHERE[name]}"), name)
