"""Multi-label classification of the five findings on original, tight, loose or soft-masked images.

- `TrainConfig` + `train(cfg) -> TrainResult`: one Lightning run in RUN_DIR (resumable, see `run`);
- `load_run(run_dir) -> (model, cfg)` and `predict_split(run_dir, split) -> DataFrame` for finished runs;
- `make_dataset(cfg, split, train=False)`: items `(image (1, S, S), labels (5,), index)`, with
  `dataset.frame` (the split's manifest rows), `dataset.raw_image(i)` and `dataset.lung_mask(i)`.
"""

from lungprior.classify.backbone import WeightsReport, check_backbone, create_backbone, load_weights_file, normalisation
from lungprior.classify.cache import CACHE_VERSION, CacheInfo, ensure_cache
from lungprior.classify.config import TrainConfig
from lungprior.classify.data import ClassifyDataset, make_dataset, prepare
from lungprior.classify.inference import load_run, predict_split
from lungprior.classify.run import TrainResult
from lungprior.classify.train import train

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
