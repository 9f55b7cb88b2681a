"""Fine-tuning LiteMedSAM / MedSAM on lung masks, one box prompt per lung (Lightning + MONAI).

`finetune(FinetuneConfig(data=..., out=...))` evaluates the base weights zero-shot, trains, keeps the best
epoch by validation Dice as OUT/best.pth (loadable by `create_backend(name, checkpoint=...)`) and compares
zero-shot and fine-tuned on the test split. On a CPU the image encoder is frozen by default and its
embeddings are cached, so epochs run the mask decoder only: a deviation from the full recipe (which also
trains the encoder, with augmentation), made because one encoder pass takes seconds per image on a CPU.
"""

from __future__ import annotations

from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.config import RECIPES, FinetuneConfig, Recipe
from lungprior.segment.finetune.data import (
    Pair,
    jitter_boxes,
    jitter_rng,
    load_pairs,
    lung_boxes,
    lung_components,
    lung_targets,
)
from lungprior.segment.finetune.dataset import LungPromptDataset, check_pairs, collate
from lungprior.segment.finetune.metrics import LungMetrics, evaluate_segmentation
from lungprior.segment.finetune.module import LungFinetuneModule
from lungprior.segment.finetune.train import FinetuneResult, base_weights, finetune

__all__ = [
    "RECIPES",
    "EmbeddingCache",
    "FinetuneConfig",
    "FinetuneResult",
    "LungFinetuneModule",
    "LungMetrics",
    "LungPromptDataset",
    "Pair",
    "Recipe",
    "base_weights",
    "check_pairs",
    "collate",
    "evaluate_segmentation",
    "finetune",
    "jitter_boxes",
    "jitter_rng",
    "load_pairs",
    "lung_boxes",
    "lung_components",
    "lung_targets",
]
