"""Per-class Platt calibration fitted on validation, and calibration metrics (Brier score, ECE).

Class-weighted BCE inflates each class's odds by its own factor, so the raw outputs are scores, not
probabilities. Platt scaling maps each class's output p to sigmoid(a * logit(p) + b), with (a, b) fitted by
maximum likelihood (scikit-learn's logistic regression without penalty) on the validation split. It is
monotone per class, so per-class AUROCs do not change; scores that combine classes (No Finding) do.

`RUN/calibration.json` holds {"method": "platt", "fitted_on": "val", "params": {"Mass": {"a": .., "b": ..}, ..}};
`apply_calibration` reads that dict.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS

SCORE_PREFIX = "p_"
CALIBRATION = "calibration.json"
_EPS = 1e-6


def logit(p: ArrayLike) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=float), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    return expit(np.asarray(x, dtype=float))


def fit_platt(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """(a, b) of sigmoid(a * logit(p) + b) by unpenalised maximum likelihood; identity (1, 0) if y has one class."""
    yy = np.asarray(y, dtype=int)
    if yy.min() == yy.max():
        return {"a": 1.0, "b": 0.0}
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    model.fit(logit(p)[:, None], yy)
    return {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}


def fit_calibration(val: pd.DataFrame) -> dict[str, Any]:
    """Platt parameters per finding from validation predictions (labels and `p_<finding>` columns)."""
    params = {k: fit_platt(val[k].to_numpy(), val[SCORE_PREFIX + k].to_numpy()) for k in FINDINGS}
    return {"method": "platt", "fitted_on": "val", "params": params}


def apply_calibration(probs_df: pd.DataFrame, calib: dict[str, Any]) -> pd.DataFrame:
    """A copy of `probs_df` whose `p_<finding>` columns are calibrated with `calib` (other columns unchanged)."""
    if calib.get("method") != "platt":
        raise LungpriorError(f"calibration: unknown method {calib.get('method')!r} (expected 'platt')")
    out = probs_df.copy()
    for k, ab in calib["params"].items():
        col = SCORE_PREFIX + k
        if col not in out.columns:
            raise LungpriorError(f"calibration: predictions have no column {col}")
        out[col] = sigmoid(float(ab["a"]) * logit(out[col].to_numpy()) + float(ab["b"]))
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
