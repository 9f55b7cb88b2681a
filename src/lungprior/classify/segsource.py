"""Where a run's lung masks came from (`RUN/segmentation.json`), so new films can be segmented the same way.

The record holds `source` (model | chexmask | masks_dir | none), the masks folder, and for `model` the
backend, the weights' path (when known) and SHA-256, and the prompt mode, as `lungprior segment` recorded them
in `segment.json` beside the masks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from lungprior.data.runjson import read_json_file, validate
from lungprior.errors import LungpriorError
from lungprior.layout import CHEXMASK_FILE, SEGMENTATION, SETTINGS_FILE
from lungprior.segment.infer.prompts import AutoPromptConfig
from lungprior.segment.weights import sha256_file

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def segmentation_record(
    masks_dir: str | os.PathLike[str] | None, weights: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Describe the source of the masks in `masks_dir`; `weights` is the checkpoint path when the caller knows it."""
    if masks_dir is None:
        return {"source": "none"}
    masks = Path(masks_dir).resolve()
    record: dict[str, Any] = {"masks_dir": str(masks)}
    settings = _read_json(masks.parent / SETTINGS_FILE)
    if settings is not None:
        record.update(source="model", backend=settings.get("backend"), weights_sha256=settings.get("weights_sha256"),
                      prompt=settings.get("prompt"), weights=None)
        if "auto" in settings:
            record["auto"] = settings["auto"]
        if weights is not None and Path(weights).is_file() and sha256_file(weights) == record["weights_sha256"]:
            record["weights"] = str(Path(weights).resolve())
        return record
    chexmask = _read_json(masks.parent / CHEXMASK_FILE)
    if chexmask is not None:
        record.update(source="chexmask", file=chexmask.get("csv"), min_rca=chexmask.get("min_rca"))
        return record
    record["source"] = "masks_dir"
    return record


def read_segmentation_record(run_dir: str | os.PathLike[str], masks_dir: str | None) -> dict[str, Any]:
    """The run's record, checked by its schema (one line naming the key when it is malformed); a run trained
    before records existed is described from its masks folder."""
    path = Path(run_dir) / SEGMENTATION
    if path.exists():
        return check_segmentation_record(read_json_file(path), path)
    return check_segmentation_record(segmentation_record(masks_dir), Path(masks_dir or ".").parent / SETTINGS_FILE)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _auto_model() -> type[BaseModel]:
    """The schema of the self-prompting cascade's settings, made from `AutoPromptConfig`'s own fields."""
    hints = typing.get_type_hints(AutoPromptConfig)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(AutoPromptConfig):
        kind = hints[f.name]
        if f.name == "prior_boxes":  # JSON has lists, not tuples
            kind = list[list[float]]
        fields[f.name] = (kind, None)
    return create_model("AutoSettings", __config__=_STRICT, **fields)


class _Segmentation(BaseModel):
    model_config = _STRICT
    source: Literal["model", "chexmask", "masks_dir", "none"]
    masks_dir: str | None = None
    backend: str | None = None
    weights_sha256: str | None = None
    weights: str | None = None
    prompt: str | None = None
    auto: dict[str, Any] | None = None
    file: str | None = None
    min_rca: float | None = None


def check_segmentation_record(record: Any, where: str | os.PathLike[str]) -> dict[str, Any]:
    """A `segmentation.json` record checked: known keys and types, the `auto` settings by their own schema."""
    validate(_Segmentation, record, where)
    auto = record.get("auto")
    if auto is not None:
        model = _auto_model()
        try:
            model.model_validate(auto)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(x) for x in first["loc"])
            raise LungpriorError(f"{where}: auto.{key}: {first['msg']}") from None
    return dict(record)
