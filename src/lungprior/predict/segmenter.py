"""Segmenting new films the way the run's own masks were made: same backend, weights (SHA-256), prompt mode."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lungprior.classify.config import TrainConfig
from lungprior.classify.segsource import read_segmentation_record
from lungprior.errors import LungpriorError
from lungprior.segment.infer.engine import create_engine
from lungprior.segment.infer.predictor import PROMPT_MODES, FilmPrediction, LungPredictor
from lungprior.segment.infer.prompts import AutoPromptConfig
from lungprior.segment.registry import create_backend
from lungprior.segment.weights import LITEMEDSAM_SHA256, sha256_file


@dataclass(frozen=True)
class SegSettings:
    """What segments a new film: backend, weights file (None = the backend's bundled weights), prompt mode."""

    backend: str
    weights: str | None
    weights_sha256: str | None
    prompt: str
    auto: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "weights": self.weights, "weights_sha256": self.weights_sha256,
                "prompt": self.prompt, "auto": self.auto, "note": self.note}


def resolve_segmentation(
    run_dir: str | os.PathLike[str], cfg: TrainConfig, *, backend: str | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> SegSettings:
    """The run's recorded segmentation settings, or `backend`/`weights` given by the user; one clear error else."""
    record = read_segmentation_record(run_dir, cfg.masks)
    source = record.get("source", "none")
    given = str(Path(weights).resolve()) if weights is not None and str(weights) != "bundled" else None
    if given is not None and not Path(given).is_file():
        raise LungpriorError(f"{weights}: segmentation checkpoint not found")
    if source == "model":
        digest = record.get("weights_sha256")
        path = given or record.get("weights")
        if path is not None and digest is not None and sha256_file(path) != digest:
            raise LungpriorError(f"{path}: SHA-256 differs from the run's segmentation weights ({digest})")
        if path is None and digest not in (None, LITEMEDSAM_SHA256):
            raise LungpriorError(
                f"{run_dir}: its masks came from {record.get('backend')} weights with SHA-256 {digest}, whose file "
                "the run does not record; pass --seg-weights PATH"
            )
        prompt = str(record.get("prompt") or "auto")
        note = ""
        if prompt == "csv":
            prompt, note = "auto", "the run was segmented with boxes from a CSV; new films use the auto cascade"
        return SegSettings(backend or str(record.get("backend") or "litemedsam"), path, digest, prompt,
                           dict(record.get("auto") or {}), note)
    if backend is not None or given is not None or str(weights) == "bundled":
        name = backend or "litemedsam"
        digest = sha256_file(given) if given else (LITEMEDSAM_SHA256 if name == "litemedsam" else None)
        note = f"segmentation chosen by the user (the run's masks: {source})"
        return SegSettings(name, given, digest, "auto", {}, note)
    if cfg.mode == "original":
        return SegSettings("litemedsam", None, LITEMEDSAM_SHA256, "auto", {},
                           "the run uses no masks; lung outline and QC from the bundled LiteMedSAM")
    raise LungpriorError(
        f"{run_dir}: its masks came from {source} ({record.get('masks_dir', '-')}), not from a segmentation model "
        "predict can rerun; pass --seg-backend litemedsam (bundled weights) or --seg-weights PATH"
    )


class Segmenter:
    """Loads the backend once and segments one film at a time through `LungPredictor` (as `segment` does)."""

    def __init__(self, settings: SegSettings, *, engine: str = "auto", device: str = "cpu") -> None:
        self.settings = settings
        self.backend = create_backend(settings.backend, settings.weights, device)
        self.engine = create_engine(self.backend, engine)
        config = AutoPromptConfig(**{k: tuple(map(tuple, v)) if k == "prior_boxes" else v
                                     for k, v in settings.auto.items()})
        self.predictor = LungPredictor(self.backend, self.engine, config)
        self.mode = PROMPT_MODES[settings.prompt]

    def __call__(self, image_id: str, image: np.ndarray) -> FilmPrediction:
        """The film's mask, probabilities (full size) and QC row; a too small image raises `ImageReadError`."""
        with torch.inference_mode():
            self.predictor.set_film(image, image_id)
            return self.predictor.predict(self.mode)
