"""Per-class calibration fitted on validation that cannot invert a ranking, and calibration metrics (Brier, ECE).

Class-weighted BCE inflates each class's odds by its own factor, so the raw outputs are scores, not
probabilities. Each class's output p is mapped to sigmoid(a * logit(p) + b) with a > 0: Platt scaling with
Platt's smoothed targets and a ridge penalty pulling the slope towards 1, the slope bounded below by
`MIN_SLOPE` (see docs/calibration.md for the measurement behind the choice). A class keeps its raw scores
when its validation split has fewer than `MIN_POSITIVES` films with (or `MIN_NEGATIVES` without) the finding,
or when validation separates it perfectly; `calibration.json` records per class what was done and why.

`RUN/calibration.json`: {"method": "platt", "fitted_on": "val", "params": {"Mass": {"method": "platt", "a": ..,
"b": .., "n_pos": .., "n_neg": .., "reason": ""}, "Nodule": {"method": "raw", ..., "reason": "..."}, ...}}.
The file is untrusted input: `check_calibration` refuses anything else with a one-line error naming the key.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS
from lungprior.layout import CALIBRATION, SCORE_PREFIX

_EPS = 1e-6

MIN_POSITIVES = 5  # fewer validation films with the finding: raw scores (docs/calibration.md)
MIN_NEGATIVES = 5
RIDGE = 1.0  # penalty (a - 1)^2 * RIDGE / 2 on the slope, in units of the log-likelihood
MIN_SLOPE = 0.05  # a >= this: the map stays strictly increasing
METHODS = ("platt", "raw")


def logit(p: ArrayLike) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=float), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    return expit(np.asarray(x, dtype=float))


def fit_platt(y: ArrayLike, p: ArrayLike, ridge: float = RIDGE, min_slope: float = MIN_SLOPE) -> dict[str, float]:
    """(a, b) of sigmoid(a * logit(p) + b): penalised maximum likelihood on Platt's smoothed targets, a >= min_slope.

    Targets are (N+ + 1) / (N+ + 2) for positives and 1 / (N- + 2) for negatives (Platt 1999), so separable
    data give a finite slope; the ridge term pulls the slope towards 1 (the identity's slope).
    """
    yy = np.asarray(y, dtype=int)
    x = logit(p)
    n_pos, n_neg = int(yy.sum()), int(yy.size - yy.sum())
    t = np.where(yy == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] * x + theta[1]
        nll = -np.sum(t * log_expit(z) + (1 - t) * log_expit(-z)) + ridge / 2 * (theta[0] - 1.0) ** 2
        r = expit(z) - t
        return float(nll), np.array([np.sum(r * x) + ridge * (theta[0] - 1.0), np.sum(r)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(min_slope, None), (None, None)])
    return {"a": float(res.x[0]), "b": float(res.x[1])}


def separates(y: np.ndarray, p: np.ndarray) -> bool:
    """Whether every film with the finding scores above every film without it (or every one below)."""
    pos, neg = p[y == 1], p[y == 0]
    return bool(pos.size and neg.size and (pos.min() > neg.max() or pos.max() < neg.min()))


def fit_class(y: ArrayLike, p: ArrayLike, min_positives: int = MIN_POSITIVES,
              min_negatives: int = MIN_NEGATIVES) -> dict[str, Any]:
    """One class's entry of calibration.json: Platt parameters, or raw scores with the reason."""
    yy, pp = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    n_pos, n_neg = int(yy.sum()), int(yy.size - yy.sum())
    entry: dict[str, Any] = {"n_pos": n_pos, "n_neg": n_neg, "reason": ""}
    if n_pos < min_positives or n_neg < min_negatives:
        short = f"{n_pos} validation films with the finding" if n_pos < min_positives else \
            f"{n_neg} validation films without the finding"
        entry["reason"] = (f"raw scores: {short} (needs ≥ {min_positives} with and ≥ {min_negatives} without)")
    elif separates(yy, pp):
        entry["reason"] = "raw scores: validation separates the finding perfectly (no slope can be estimated)"
    if entry["reason"]:
        return {"method": "raw", **entry}
    return {"method": "platt", **fit_platt(yy, pp), **entry}


def fit_calibration(val: pd.DataFrame) -> dict[str, Any]:
    """Calibration per finding from validation predictions (labels and `p_<finding>` columns)."""
    params = {k: fit_class(val[k].to_numpy(), val[SCORE_PREFIX + k].to_numpy()) for k in FINDINGS}
    return {"method": "platt", "fitted_on": "val", "ridge": RIDGE, "min_slope": MIN_SLOPE,
            "min_positives": MIN_POSITIVES, "params": params}


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LungpriorError(f"calibration: {key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LungpriorError(f"calibration: {key} is {value} (must be finite)")
    return float(value)


def check_calibration(calib: Any) -> dict[str, tuple[float, float] | None]:
    """Validate a calibration (untrusted input); per finding (a, b), or None for raw scores. Bad content raises
    a one-line `LungpriorError` naming the key."""
    if not isinstance(calib, dict):
        raise LungpriorError(f"calibration: expected a JSON object, got {type(calib).__name__}")
    if calib.get("method") != "platt":
        raise LungpriorError(f"calibration: unknown method {calib.get('method')!r} (expected 'platt')")
    params = calib.get("params")
    if not isinstance(params, dict):
        raise LungpriorError(f"calibration: 'params' must map each finding to its parameters, got "
                             f"{type(params).__name__}")
    out: dict[str, tuple[float, float] | None] = {}
    for k, entry in params.items():
        if not isinstance(entry, dict):
            raise LungpriorError(f"calibration: params.{k} must be an object, got {type(entry).__name__}")
        method = entry.get("method", "platt")
        if method not in METHODS:
            raise LungpriorError(f"calibration: params.{k}.method {method!r} is unknown (expected platt or raw)")
        if method == "raw":
            out[k] = None
            continue
        a, b = (_number(entry.get(n), f"params.{k}.{n}") for n in ("a", "b"))
        if a <= 0:
            raise LungpriorError(f"calibration: params.{k}.a = {a:g} is not positive (it would invert the ranking)")
        out[k] = (a, b)
    return out


def read_calibration(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A run's `calibration.json`, validated (None when absent); unreadable or bad content raises, naming the file."""
    path = Path(run_dir) / CALIBRATION
    if not path.is_file():
        return None
    try:
        calib = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LungpriorError(f"{path}: not a calibration file ({exc})") from None
    try:
        check_calibration(calib)
    except LungpriorError as exc:
        raise LungpriorError(f"{path}: {exc}") from None
    return calib


def calibrate_scores(scores: ArrayLike, calib: dict[str, Any] | None) -> np.ndarray:
    """The (n, 5) score matrix (columns in FINDINGS order) calibrated per finding; raw classes stay raw."""
    out = np.array(scores, dtype=np.float64, copy=True)
    if calib is None:
        return out
    for k, ab in check_calibration(calib).items():
        if k not in FINDINGS:
            raise LungpriorError(f"calibration: params.{k} is not a finding ({', '.join(FINDINGS)})")
        if ab is not None:
            j = FINDINGS.index(k)
            out[..., j] = sigmoid(ab[0] * logit(out[..., j]) + ab[1])
    return out


def apply_calibration(probs_df: pd.DataFrame, calib: dict[str, Any]) -> pd.DataFrame:
    """A copy of `probs_df` whose `p_<finding>` columns are calibrated with `calib` (other columns unchanged)."""
    params = check_calibration(calib)
    out = probs_df.copy()
    for k, ab in params.items():
        col = SCORE_PREFIX + k
        if col not in out.columns:
            raise LungpriorError(f"calibration: predictions have no column {col}")
        if ab is not None:
            out[col] = sigmoid(ab[0] * logit(out[col].to_numpy()) + ab[1])
    return out


def calibration_status(calib: dict[str, Any] | None) -> dict[str, str]:
    """Per finding, how its probabilities are made: 'calibrated (Platt, a = 0.93)', or 'raw: <reason>'."""
    if calib is None:
        return {k: "raw: the run has no calibration.json" for k in FINDINGS}
    params = check_calibration(calib)
    out = {}
    for k in FINDINGS:
        ab = params.get(k)
        if ab is None:
            out[k] = str(calib["params"].get(k, {}).get("reason") or "raw: no calibration for this finding")
        else:
            out[k] = f"calibrated (Platt, fitted on val, slope {ab[0]:.2g})"
    return out


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Mean squared difference between probability and 0/1 label."""
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: bins of equal width on [0, 1], |mean label - mean p| weighted by bin size."""
    yy, pp = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if yy.size == 0:
        return math.nan
    bins = np.minimum((pp * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(yy[sel].mean() - pp[sel].mean())
    return float(total / yy.size)


def calibration_metrics(df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Brier score and ECE (10 bins) per finding of a prediction table."""
    return {k: {"brier": brier(df[k], df[SCORE_PREFIX + k]), "ece": ece(df[k], df[SCORE_PREFIX + k])}
            for k in FINDINGS}
