"""`export_run`: a run's classifier as ONNX (logits and probabilities) with a JSON model card.

The card holds no absolute local path (paths inside the run folder become relative, others keep their name), and
the ONNX file carries its labels, input size, normalisation and mask mode as `metadata_props` (`onnx_metadata`).

Preprocessing stays outside the graph (see `model_card`): decode the film to grey [0, 1] (bone white), apply the
run's lung mask at the film's own resolution, resize to S x S (bilinear, aspect not kept), round to 8 bits,
divide by 255, subtract `mean`, divide by `std`, and feed (B, 1, S, S) float32.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import torch
from torch import nn

import lungprior
from lungprior.classify.backbone import normalisation
from lungprior.classify.config import TrainConfig
from lungprior.classify.inference import load_run
from lungprior.classify.segsource import read_segmentation_record
from lungprior.data.atomic import atomic_path, output_errors, write_json
from lungprior.data.runjson import check_metrics, first_non_finite, read_json_file
from lungprior.errors import LungpriorError, one_line
from lungprior.extras import require
from lungprior.labels import FINDINGS
from lungprior.layout import CALIBRATION, EFFICIENCY, METRICS
from lungprior.segment.weights import sha256_file

OPSET = 17
ONNX_FILE = "classifier.onnx"
CARD_FILE = "model_card.json"
FORMATS: tuple[str, ...] = ("onnx",)


class WithProbabilities(nn.Module):
    """The backbone with a sigmoid output beside its logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.sigmoid(logits)


@dataclass(frozen=True)
class ExportResult:
    onnx: Path
    card: Path


def export_run(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], fmt: str = "onnx") -> ExportResult:
    """Write `OUT/classifier.onnx` (dynamic batch axis) and `OUT/model_card.json` for a finished run."""
    if fmt not in FORMATS:
        raise LungpriorError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    require("onnx", "the model's metadata in lungprior export")
    run = Path(run_dir)
    model, cfg = load_run(run)
    out = Path(out_dir)
    with output_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    metrics = _metrics(run)  # checked before anything is written: a malformed file leaves no model behind
    dummy = torch.zeros(1, 1, cfg.image_size, cfg.image_size)
    with output_errors(onnx_path), atomic_path(onnx_path, suffix=".onnx") as tmp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    WithProbabilities(model).eval(), (dummy,), str(tmp), opset_version=OPSET, dynamo=False,
                    input_names=["image"], output_names=["logits", "probabilities"],
                    dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "probabilities": {0: "batch"}},
                )
        except OSError as exc:  # a full or read-only disk: name the output, not the temporary file
            raise LungpriorError(f"{onnx_path}: {exc.strerror or one_line(exc)}") from None
        except Exception as exc:  # the exporter raises many types
            raise LungpriorError(f"{onnx_path}: ONNX export failed ({one_line(exc)})") from None
        card = model_card(run, cfg, onnx_path, sha256=None, metrics=metrics)
        bad = first_non_finite(card)
        if bad is not None:
            raise LungpriorError(f"{run}: the model card's {bad} is not a finite number; nothing exported")
        _add_metadata(tmp, card)
        card["sha256"] = sha256_file(tmp)
        with output_errors(out / CARD_FILE):
            write_json(out / CARD_FILE, card)  # the model is renamed into place only after its card
    return ExportResult(onnx_path, out / CARD_FILE)


def model_card(
    run: Path, cfg: TrainConfig, onnx_path: Path, *, sha256: str | None = None, metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Labels, input, normalisation, mask mode, training data, metrics with CIs, versions."""
    mean, std = normalisation(cfg.backbone)
    spec = cfg.mask_spec()
    card: dict[str, Any] = {
        "name": f"lungprior {cfg.backbone} ({spec.key()})",
        "lungprior_version": lungprior.__version__,
        "file": onnx_path.name,
        "sha256": sha256 or (sha256_file(onnx_path) if onnx_path.is_file() else None),
        "opset": OPSET,
        "labels": list(FINDINGS),
        "outputs": {"logits": "(B, 5) raw scores", "probabilities": "(B, 5) sigmoid(logits), uncalibrated"},
        "no_finding": "1 - max of the five probabilities (the default of `lungprior evaluate`)",
        "input": {
            "name": "image", "shape": ["batch", 1, cfg.image_size, cfg.image_size], "dtype": "float32",
            "preprocessing": [
                "decode to grey levels in [0, 1], bone white (DICOM through its modality and VOI transforms)",
                "segment the lungs at the film's resolution (see `segmentation`) and apply the mask (`mask`)",
                f"resize to {cfg.image_size} x {cfg.image_size}, bilinear with antialiasing, aspect not kept",
                "round to 8 bits, divide by 255",
                f"subtract mean {mean:.6g}, divide by std {std:.6g}",
            ],
            "normalisation": {"mean": mean, "std": std},
        },
        "mask": {"mode": spec.mode, "key": spec.key(), "radius_mm": spec.radius_mm, "radius_px": spec.radius_px,
                 "hull": spec.hull, "alpha": spec.alpha, "fill": spec.fill},
        "segmentation": read_segmentation_record(run, cfg.masks),
        "training": {
            "backbone": cfg.backbone, "pretrained": cfg.pretrained, "manifest": cfg.manifest, "epochs": cfg.epochs,
            "seed": cfg.seed, "result": _without(_read(run / EFFICIENCY), LOCAL_ONLY),
        },
        "metrics": metrics if metrics is not None else _metrics(run),
        "calibration": _read(run / CALIBRATION),
    }
    return _portable(card, run)


#: Keys of `efficiency.json` that only mean something on the machine that trained the run.
LOCAL_ONLY = ("run_dir", "cache_dir")


def _without(record: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in record.items() if k not in keys} if isinstance(record, dict) else record


def _portable(value: Any, run: Path) -> Any:
    """The card with no absolute local path: one inside the run folder becomes relative to it, any other keeps
    only its file or folder name."""
    if isinstance(value, dict):
        return {k: _portable(v, run) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, run) for v in value]
    if isinstance(value, str) and (os.path.isabs(value) or PureWindowsPath(value).is_absolute()):
        path = Path(value)
        try:
            return path.resolve().relative_to(run.resolve()).as_posix()
        except ValueError:
            return path.name or PureWindowsPath(value).name
    return value


def onnx_metadata(card: dict[str, Any]) -> dict[str, str]:
    """What a runtime needs to feed the model, as ONNX `metadata_props` (every value a string, lists as JSON)."""
    norm = card["input"]["normalisation"]
    return {
        "labels": json.dumps(card["labels"]), "input_size": str(card["input"]["shape"][-1]),
        "mean": repr(float(norm["mean"])), "std": repr(float(norm["std"])), "mask_mode": card["mask"]["mode"],
        "mask_key": card["mask"]["key"], "lungprior_version": card["lungprior_version"],
    }


def _add_metadata(path: Path, card: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, onnx_metadata(card))
    onnx.save(proto, str(path))


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _metrics(run: Path) -> dict[str, Any] | None:
    """Test metrics with their patient-bootstrap CIs, when the run was evaluated (the file checked by its schema:
    a malformed `metrics.json` is one line naming the key)."""
    path = run / METRICS
    if not path.exists():
        return None
    m = check_metrics(read_json_file(path, allow_nan=True), path)
    return {"split": m.get("split", "test"), "n_images": m.get("n_images"), "n_patients": m.get("n_patients"),
            "bootstrap": m.get("bootstrap"), "macro_auroc": m.get("macro_auroc"),
            "per_class": {k: {"auroc": v.get("auroc"), "auprc": v.get("auprc")}
                          for k, v in (m.get("per_class") or {}).items()},
            "no_finding": {"auroc": (m.get("no_finding") or {}).get("auroc")}}
