"""Evaluating a finished run (`evaluate_run`) and comparing two runs (`compare_runs`)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from lungprior.classify.inference import predict_split
from lungprior.classify.run import excluded_ids
from lungprior.data.atomic import atomic_path, write_json
from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import read_calibration
from lungprior.evaluate.compare import compare_predictions
from lungprior.evaluate.metrics import evaluation_metrics
from lungprior.evaluate.stats import DegenerateDataWarning
from lungprior.evaluate.steps import StepProgress
from lungprior.layout import CALIBRATION, CONFIG, EFFICIENCY, METRICS, PREDICTIONS, VAL_PREDICTIONS

CAM_GALLERY = "cam_gallery.png"


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)


def evaluate_run(
    run_dir: str | os.PathLike[str], split: str = "test", *, n_resamples: int = 1000, seed: int = 0,
    no_finding: str = "max", cam: bool = True, max_cam: int = 30, device: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Predict `split` and validation, compute all metrics, Grad-CAM attention; write them into the run folder."""
    run = Path(run_dir)
    if not (run / EFFICIENCY).is_file():
        raise LungpriorError(f"{run}: not a finished training run (no {EFFICIENCY}); run `lungprior train` first")
    steps = StepProgress("evaluate", ["predictions", "bootstrap", *(["Grad-CAM"] if cam else [])], enabled=progress)
    with steps.step("predictions", split if split == "val" else f"{split} and val", spinner=False):
        test = predict_split(run, split, device=device, progress=progress)
        val = predict_split(run, "val", device=device, progress=False) if split != "val" else test
    _write_csv(test, run / (PREDICTIONS if split == "test" else f"predictions_{split}.csv"))
    _write_csv(val, run / VAL_PREDICTIONS)
    with warnings.catch_warnings(), steps.step("bootstrap", f"{n_resamples} patient resamples"):
        warnings.simplefilter("ignore", DegenerateDataWarning)  # recorded in metrics["warnings"]
        metrics = evaluation_metrics(test, val, n_resamples=n_resamples, seed=seed, no_finding=no_finding,
                                     in_sample=split == "val")
    if metrics.get("calibration"):
        write_json(run / CALIBRATION, {k: v for k, v in metrics["calibration"].items()
                                       if k not in ("in_sample", "raw", "calibrated")})
    metrics["split"] = split
    metrics["run"] = str(run)
    metrics["config"] = json.loads((run / CONFIG).read_text())
    metrics["efficiency"] = json.loads((run / EFFICIENCY).read_text())
    if cam:
        from lungprior.evaluate.cam import cam_analysis
        from lungprior.evaluate.cam_gallery import write_cam_gallery

        with steps.step("Grad-CAM", f"up to {max_cam} positives per finding"):
            summary, examples = cam_analysis(run, split, max_per_class=max_cam, seed=seed, device=device)
            metrics["attention"] = summary
            write_cam_gallery(examples, run / CAM_GALLERY,
                              title=f"{run_title(metrics['config'])}: Grad-CAM on {split} positives")
    write_json(run / (METRICS if split == "test" else f"metrics_{split}.json"), metrics)
    return metrics


def run_title(config: dict[str, Any]) -> str:
    """'resnet18, tight, seed 0': what a run trained (from its config.json), not its folder's name."""
    from lungprior.classify.config import TrainConfig

    try:
        mask = TrainConfig.from_dict(config).mask_spec().key()
    except (TypeError, ValueError, LungpriorError):
        mask = str(config.get("mode", "?"))
    return f"{config.get('backbone', '?')}, {mask}, seed {config.get('seed', '?')}"


def load_predictions(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """A run's test predictions (`predictions.csv`), written by `evaluate_run`."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        raise LungpriorError(f"{run_dir}: no {PREDICTIONS}; run `lungprior evaluate --run {run_dir}` first")
    return pd.read_csv(path, dtype={"image_id": str, "patient_id": str})


def paired_predictions(
    run_a: str | os.PathLike[str], run_b: str | os.PathLike[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' test predictions on their common films: a film that either run left out for want of a usable
    lung mask (its `excluded.csv`) is dropped from both, so a masked run pairs with an unmasked one."""
    a, b = load_predictions(run_a), load_predictions(run_b)
    skip = excluded_ids(run_a) | excluded_ids(run_b)
    if not skip:
        return a, b
    return (a[~a["image_id"].isin(skip)].reset_index(drop=True), b[~b["image_id"].isin(skip)].reset_index(drop=True))


def load_calibration(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A run's calibration (`calibration.json`, fitted on val by `evaluate_run`), validated; None if absent."""
    return read_calibration(run_dir)


def compare_runs(
    run_a: str | os.PathLike[str], run_b: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None,
    n_resamples: int = 1000, seed: int = 0, no_finding: str = "max", test: str = "auto",
) -> pd.DataFrame:
    """Paired comparison of two evaluated runs on the same test images; optionally written as CSV + JSON.

    `test` is the per-class test (see `compare_predictions`); the table's `test` column names the one that ran.
    """
    names = (Path(run_a).name, Path(run_b).name)
    if names[0] == names[1]:
        names = (str(run_a), str(run_b))
    table = compare_predictions(*paired_predictions(run_a, run_b), names=names,
                                n_resamples=n_resamples, seed=seed, no_finding=no_finding, test=test,
                                calibration=(load_calibration(run_a), load_calibration(run_b)))
    if out is not None:
        base = Path(out)
        _write_csv(table, base.with_suffix(".csv"))
        write_json(base.with_suffix(".json"), table.astype(object).where(table.notna(), None).to_dict("records"))
    return table
