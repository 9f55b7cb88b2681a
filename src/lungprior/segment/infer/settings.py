"""The settings that decide a run's masks, kept in `segment.json`: a folder is only resumed with the same ones."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from lungprior.data.atomic import write_json
from lungprior.errors import LungpriorError
from lungprior.segment.infer.paths import SETTINGS_FILE
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
    path = Path(out_dir) / SETTINGS_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LungpriorError(f"{path}: unreadable ({exc})") from None
        if isinstance(old.get("auto"), dict):  # a cascade setting added since then had its default
            defaults = json.loads(json.dumps(dataclasses.asdict(AutoPromptConfig())))
            old["auto"] = {**defaults, **old["auto"]}
        for key in [*settings, *(k for k in old if k not in settings)]:
            if old.get(key) != settings.get(key):
                raise LungpriorError(
                    f"{out_dir}: segmented with other settings ({key}: {old.get(key)} now {settings.get(key)}); "
                    "use a new --out folder"
                )
        return
    write_json(path, settings)
