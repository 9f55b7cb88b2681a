"""Metrics of one run's predictions: per-class AUROC/AUPRC with clustered-bootstrap CIs, macro AUROC,
No Finding from a derived score, and sensitivity/specificity at thresholds chosen on validation."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import apply_calibration, calibration_metrics, fit_calibration
from lungprior.evaluate.stats import (
    BootstrapCI,
    DegenerateDataWarning,
    auroc,
    bootstrap_macro_auroc_ci,
    bootstrap_metric_ci,
    no_finding_score,
    sens_spec,
    youden_threshold,
)
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import SCORE_PREFIX


def check_predictions(df: pd.DataFrame, what: str = "predictions") -> None:
    """Raise a one-line error unless `df` has ids, patients, the six labels and the five scores."""
    needed = ["image_id", "patient_id", *FINDINGS, NO_FINDING, *(SCORE_PREFIX + k for k in FINDINGS)]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise LungpriorError(f"{what}: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise LungpriorError(f"{what}: no rows")


def label_matrix(df: pd.DataFrame) -> np.ndarray:
    return df.loc[:, list(FINDINGS)].to_numpy(dtype=np.int64)


def score_matrix(df: pd.DataFrame) -> np.ndarray:
    return df.loc[:, [SCORE_PREFIX + k for k in FINDINGS]].to_numpy(dtype=np.float64)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _ci(est: tuple[float, float, float]) -> dict[str, Any]:
    """Estimate and interval; a bootstrap interval also keeps its used and skipped resample counts."""
    out: dict[str, Any] = {"estimate": _nan_to_none(est[0]), "low": _nan_to_none(est[1]),
                           "high": _nan_to_none(est[2])}
    if isinstance(est, BootstrapCI):
        out.update(n_used=est.n_used, n_skipped=est.n_skipped)
    return out


def _zero_width_note(name: str, ci: dict[str, Any]) -> str | None:
    """A note when a bootstrap interval has zero width (e.g. AUROC 1.0 in every resample)."""
    if ci["estimate"] is None or ci["low"] is None or ci["low"] != ci["high"]:
        return None
    return (f"{name}: AUROC {ci['estimate']:.3f} with a zero-width bootstrap interval (the same value in every "
            "resample); the interval does not express the uncertainty of a perfect or near-perfect separation")


SKIPPED = "bootstrap resamples skipped"
SKIP_SHARE = 0.05  # skipped resamples worth a warning (as evaluate.bootstrap warns)


def _empty_side(entry: dict[str, Any]) -> str:
    return "no film with the finding" if entry["n_positive"] == 0 else "no film without the finding"


def _skipped_notes(per_class: dict[str, Any], macro: tuple, nf: dict[str, Any], n_resamples: int) -> list[str]:
    """Bootstrap resamples skipped because a class was absent from them, named per class (and for the macro)."""
    notes, absent = [], []
    for k, entry in [*per_class.items(), (NO_FINDING, nf)]:
        skipped = entry.get("auroc", {}).get("n_skipped") or 0
        if skipped and entry.get("auroc", {}).get("estimate") is not None:
            absent.append(f"{k} in {skipped}")
            if skipped >= SKIP_SHARE * n_resamples:
                notes.append(f"{k}: {skipped} of {n_resamples} {SKIPPED} (no film with or without the finding in "
                             f"them; {entry['n_positive']} test film(s) have it); its interval may be unreliable")
    skipped = getattr(macro, "n_skipped", 0)
    if skipped and skipped >= SKIP_SHARE * n_resamples:
        which = ", ".join(a for a in absent if not a.startswith(NO_FINDING))
        notes.append(f"macro AUROC: {skipped} of {n_resamples} {SKIPPED} (a class absent: {which}); its interval "
                     "may be unreliable")
    return notes


def _validation_notes(val: pd.DataFrame | None, calib: dict[str, Any] | None) -> list[str]:
    """Empty validation classes (no threshold chosen) and classes whose probabilities stay raw."""
    if val is None:
        return []
    notes = []
    for k in FINDINGS:
        n_pos = int(val[k].sum())
        if n_pos in (0, len(val)):
            notes.append(f"{k}: {_empty_side({'n_positive': n_pos})} in the validation split; no threshold chosen")
        entry = (calib or {}).get("params", {}).get(k, {})
        if entry.get("method") == "raw" and n_pos not in (0, len(val)):
            notes.append(f"{k}: probabilities not calibrated ({entry.get('reason', 'raw scores')})")
    return notes


def _operating_point(y_val: np.ndarray | None, s_val: np.ndarray | None, y: np.ndarray, s: np.ndarray) -> dict:
    """Youden threshold chosen on validation, applied to test."""
    if y_val is None or s_val is None or y_val.min() == y_val.max():
        return {"threshold": None, "sensitivity": None, "specificity": None}
    t = youden_threshold(y_val, s_val)
    sens, spec = sens_spec(y, s, t)
    return {"threshold": float(t), "sensitivity": _nan_to_none(sens), "specificity": _nan_to_none(spec)}


def evaluation_metrics(
    test: pd.DataFrame, val: pd.DataFrame | None = None, *, n_resamples: int = 1000, seed: int = 0,
    no_finding: str = "max", alpha: float = 0.05, in_sample: bool = False,
) -> dict[str, Any]:
    """All metrics of one run on `test`; thresholds and the Platt calibration are chosen on `val` when given.

    The No Finding score is computed from calibrated probabilities when `val` is given (its AUROC from the raw
    outputs is kept as `auroc_uncalibrated`). `in_sample`: `test` is the validation split itself, so the
    thresholds and calibration are evaluated in-sample (noted in the output).
    """
    check_predictions(test, "test predictions")
    split_name = "validation" if in_sample else "test"
    if val is not None:
        check_predictions(val, "validation predictions")
    calib = fit_calibration(val) if val is not None else None
    groups = test["patient_id"].astype(str).to_numpy()
    y, s = label_matrix(test), score_matrix(test)
    y_val = label_matrix(val) if val is not None else None
    s_val = score_matrix(val) if val is not None else None
    notes: list[str] = []
    per_class: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateDataWarning)
        for j, k in enumerate(FINDINGS):
            entry: dict[str, Any] = {"n_positive": int(y[:, j].sum()), "n_negative": int((1 - y[:, j]).sum())}
            if entry["n_positive"] == 0 or entry["n_negative"] == 0:
                notes.append(f"{k}: {_empty_side(entry)} in the {split_name} split; AUROC undefined")
                entry.update(auroc=_ci((np.nan,) * 3), auprc=_ci((np.nan,) * 3))
            else:
                entry["auroc"] = _ci(bootstrap_metric_ci(y[:, j], s[:, j], groups, "auroc", n_resamples, alpha, seed))
                entry["auprc"] = _ci(bootstrap_metric_ci(y[:, j], s[:, j], groups, "auprc", n_resamples, alpha, seed))
                notes.append(_zero_width_note(k, entry["auroc"]))
            with warnings.catch_warnings(record=True) as op_caught:
                warnings.simplefilter("always", DegenerateDataWarning)
                entry.update(_operating_point(y_val[:, j] if y_val is not None else None,
                                              s_val[:, j] if s_val is not None else None, y[:, j], s[:, j]))
            if entry["n_positive"] and entry["n_negative"]:  # an empty class is already named above
                notes.extend(f"{k}: {w.message}" for w in op_caught)
            per_class[k] = entry
        macro = bootstrap_macro_auroc_ci(y, s, groups, n_resamples, alpha, seed)
        nf_y = test[NO_FINDING].to_numpy(dtype=np.int64)
        s_cal = score_matrix(apply_calibration(test, calib)) if calib is not None else s
        nf_s = no_finding_score(s_cal, no_finding)
        nf: dict[str, Any] = {"method": no_finding, "n_positive": int(nf_y.sum()),
                              "probabilities": "calibrated (fitted on val)" if calib else "raw outputs"}
        if nf_y.min() == nf_y.max():
            notes.append(f"{NO_FINDING}: {_empty_side({'n_positive': int(nf_y.sum())})} in the {split_name} split; "
                         "AUROC undefined")
            nf.update(auroc=_ci((np.nan,) * 3), auprc=_ci((np.nan,) * 3))
        else:
            nf["auroc"] = _ci(bootstrap_metric_ci(nf_y, nf_s, groups, "auroc", n_resamples, alpha, seed))
            nf["auprc"] = _ci(bootstrap_metric_ci(nf_y, nf_s, groups, "auprc", n_resamples, alpha, seed))
            notes.append(_zero_width_note(NO_FINDING, nf["auroc"]))
            if calib is not None:  # does calibration change the No Finding AUROC? calibrated - raw
                nf["auroc_uncalibrated"] = _nan_to_none(auroc(nf_y, no_finding_score(s, no_finding)))
                if nf["auroc"]["estimate"] is not None and nf["auroc_uncalibrated"] is not None:
                    nf["auroc_change_from_calibration"] = nf["auroc"]["estimate"] - nf["auroc_uncalibrated"]
        s_val_cal = score_matrix(apply_calibration(val, calib)) if calib is not None else s_val
        nf_val = no_finding_score(s_val_cal, no_finding) if s_val_cal is not None else None
        nf.update(_operating_point(val[NO_FINDING].to_numpy(dtype=np.int64) if val is not None else None,
                                  nf_val, nf_y, nf_s))
    notes = [n for n in notes if n]
    notes.extend(_skipped_notes(per_class, macro, nf, n_resamples))
    notes.extend(_validation_notes(val, calib))
    notes.extend(sorted({str(w.message) for w in caught if issubclass(w.category, DegenerateDataWarning)
                         and SKIPPED not in str(w.message)}))  # skipped resamples: named per class above
    if in_sample and val is not None:
        notes.append("thresholds and calibration were chosen on val and are evaluated on val: sensitivity, "
                     "specificity and calibration here are in-sample (optimistic)")
    for note in notes:
        warnings.warn(note, DegenerateDataWarning, stacklevel=2)
    return {
        "n_images": len(test),
        "n_patients": int(test["patient_id"].nunique()),
        "bootstrap": {"n_resamples": n_resamples, "alpha": alpha, "seed": seed, "unit": "patient"},
        "thresholds": {"chosen_on": "val" if val is not None else None, "rule": "Youden", "in_sample": in_sample},
        "calibration": None if calib is None else {
            **calib, "in_sample": in_sample,
            "raw": calibration_metrics(test), "calibrated": calibration_metrics(apply_calibration(test, calib))},
        "per_class": per_class,
        "macro_auroc": _ci(macro),
        "no_finding": nf,
        "warnings": notes,
    }
