"""Fine-tuning LiteMedSAM / MedSAM on lung masks, one box prompt per lung (Lightning + MONAI).

`finetune(FinetuneConfig(data=..., out=...))` evaluates the base weights zero-shot, trains, keeps the best
epoch by validation Dice as OUT/best.pth (loadable by `create_backend(name, checkpoint=...)`) and compares
zero-shot and fine-tuned on the test split. The recipe: every film seen as several fixed augmented views,
box sides jittered inward and outward by fractions of the box, Dice + BCE with "ignore" pixels left out,
AdamW with a one-cycle schedule. On a GPU the image encoder is trained too (at 0.1 x the learning rate); on a
CPU it is frozen by default and the embeddings of every view are cached, so epochs run the mask decoder only
(the encoder takes seconds per image there). `train_model` is the training loop itself, also used by
benchmarks/segment_cv.py.
"""

from __future__ import annotations

from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.config import AUTO_BUDGET, RECIPES, FinetuneConfig, Recipe
from lungprior.segment.finetune.data import (
    TrainingPair,
    jitter_boxes,
    jitter_rng,
    load_pairs,
    lung_boxes,
    lung_components,
    lung_targets,
)
from lungprior.segment.finetune.dataset import LungPromptDataset, check_pairs, collate
from lungprior.segment.finetune.fit import train_model
from lungprior.segment.finetune.losses import MaskedSegLoss
from lungprior.segment.finetune.metrics import LungMetrics, evaluate_segmentation
from lungprior.segment.finetune.module import LungFinetuneModule
from lungprior.segment.finetune.train import FinetuneResult, base_weights, finetune

__all__ = [
    "AUTO_BUDGET",
    "RECIPES",
    "EmbeddingCache",
    "FinetuneConfig",
    "FinetuneResult",
    "LungFinetuneModule",
    "LungMetrics",
    "LungPromptDataset",
    "MaskedSegLoss",
    "Recipe",
    "TrainingPair",
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
    "train_model",
]
