"""The settings that decide a run's masks, kept in `segment.json`: a folder is only resumed with the same ones."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from lungprior.data.claim import claim_folder
from lungprior.errors import LungpriorError
from lungprior.layout import SETTINGS_FILE
from lungprior.segment.infer.prompts import AutoPromptConfig
from lungprior.segment.weights import LITEMEDSAM_SHA256, sha256_file


def run_settings(
    backend: str, weights: str | os.PathLike[str] | None, mode: str, prompt: str | os.PathLike[str],
    config: AutoPromptConfig, embeddings: str = "float32",
) -> dict[str, object]:
    """Backend, weights SHA-256, prompt mode (with the CSV's SHA-256), the cascade's settings and the embeddings'
    precision ("float16" when they come from, or are rounded like, an embedding cache)."""
    if weights is not None:
        if not Path(weights).is_file():
            raise LungpriorError(f"{weights}: checkpoint not found")
        digest = sha256_file(weights)
    else:
        digest = LITEMEDSAM_SHA256 if backend == "litemedsam" else None
    settings: dict[str, object] = {"backend": backend, "weights_sha256": digest, "prompt": mode}
    if embeddings != "float32":
        settings["embeddings"] = embeddings
    if mode == "csv":
        settings["prompt_sha256"] = sha256_file(prompt)
    if mode == "auto":
        settings["auto"] = dataclasses.asdict(config)
    return json.loads(json.dumps(settings))


def check_settings(out_dir: str | os.PathLike[str], settings: dict[str, object]) -> None:
    """Record `settings` in a new run folder, or refuse a folder that was segmented with other ones."""
    claim_folder(out_dir, SETTINGS_FILE, settings, "masks", upgrade=_with_new_defaults, owns_folder=False)


def _with_new_defaults(old: dict[str, object]) -> dict[str, object]:
    """Stored settings with the defaults of cascade settings added since they were written."""
    if isinstance(old.get("auto"), dict):
        defaults = json.loads(json.dumps(dataclasses.asdict(AutoPromptConfig())))
        old["auto"] = {**defaults, **old["auto"]}
    return old
