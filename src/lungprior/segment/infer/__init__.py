"""Prompt-free lung segmentation of a manifest: cascade prompts, batching, resume, QC, sharding, ONNX engine.

`segment_manifest(manifest, out_dir)` writes `masks/<mask name>.png`, `qc.csv` and `errors.csv`;
`mask_path_for(masks_dir, image_id)` is where any consumer finds an image's mask. `LungPredictor` segments one
film (`set_film`, then `predict`): every command segments through it.
"""

from __future__ import annotations

from lungprior.layout import mask_name, mask_path_for
from lungprior.segment.infer.cascade import Cascade, LungPrediction, work_transform
from lungprior.segment.infer.engine import ENGINES, Engine, OnnxEngine, TorchEngine, create_engine, resolve_engine
from lungprior.segment.infer.onnx_cache import cached_onnx, default_cache_dir, export_onnx, weights_digest
from lungprior.segment.infer.predictor import FilmPrediction, LungPredictor
from lungprior.segment.infer.prompts import (
    PRIOR_BOXES,
    SIDES,
    AutoPromptConfig,
    lung_candidates,
    prior_boxes,
    read_prompt_csv,
    whole_box,
)
from lungprior.segment.infer.qc import QC_COLUMNS, qc_row
from lungprior.segment.infer.records import ERROR_COLUMNS, merge_shards
from lungprior.segment.infer.runner import SegmentResult, segment_manifest
from lungprior.segment.infer.shards import parse_shard, resolve_shard

__all__ = [
    "ENGINES",
    "ERROR_COLUMNS",
    "PRIOR_BOXES",
    "QC_COLUMNS",
    "SIDES",
    "AutoPromptConfig",
    "Cascade",
    "Engine",
    "FilmPrediction",
    "LungPrediction",
    "LungPredictor",
    "OnnxEngine",
    "SegmentResult",
    "TorchEngine",
    "cached_onnx",
    "create_engine",
    "default_cache_dir",
    "export_onnx",
    "lung_candidates",
    "mask_name",
    "mask_path_for",
    "merge_shards",
    "parse_shard",
    "prior_boxes",
    "qc_row",
    "read_prompt_csv",
    "resolve_engine",
    "resolve_shard",
    "segment_manifest",
    "weights_digest",
    "whole_box",
    "work_transform",
]
