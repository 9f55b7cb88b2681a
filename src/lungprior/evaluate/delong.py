"""DeLong's AUROC covariance, paired test and confidence interval; Holm's p-value adjustment.

The covariance uses DeLong's structural components (placements), computed in O(n log n) from midranks
(Sun & Xu 2014), so tied scores count one half exactly as in R's pROC. The test and interval reproduce
`pROC::roc.test(paired=TRUE, method="delong")` and `pROC::ci.auc(method="delong")`, with the positive
class scoring higher (pROC's `direction="<"`, `levels=c(0, 1)`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata

from lungprior.errors import LungpriorError
from lungprior.evaluate.scores import DegenerateDataWarning, check_labels, check_scores, warn_if_degenerate


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong test of two AUROCs on the same cases: diff = auc_a - auc_b, two-sided p."""

    auc_a: float
    auc_b: float
    diff: float
    z: float
    p: float
    se: float


def _placements(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong placements of each positive (V10, shape (m, k)) and each negative (V01, shape (n, k)).

    V10_i = share of negatives scored below positive i (ties 1/2); V01_j = share of positives scored
    above negative j (ties 1/2). Both average to the AUROC.
    """
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    ranks_all = rankdata(s, axis=0)
    v10 = (ranks_all[pos] - rankdata(s[pos], axis=0)) / n
    v01 = 1.0 - (ranks_all[~pos] - rankdata(s[~pos], axis=0)) / m
    return v10, v01


def delong_auc_cov(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and their DeLong covariance matrix (k, k) for scores of shape (n,) or (n, k).

    With no positives or no negatives everything is NaN (with a warning); with a single positive or a
    single negative the AUROCs are defined but the covariance is NaN.
    """
    y = check_labels(y_true)
    s = check_scores(scores, y.size, ndim=2 if np.ndim(scores) == 2 else 1)
    s2 = s.reshape(y.size, -1)
    k = s2.shape[1]
    nan_cov = np.full((k, k), np.nan)
    if warn_if_degenerate(y, "DeLong AUROC"):
        return np.full(k, np.nan), nan_cov
    v10, v01 = _placements(y, s2)
    aucs = v10.mean(axis=0)
    m, n = v10.shape[0], v01.shape[0]
    if m < 2 or n < 2:
        warnings.warn(
            f"DeLong variance is undefined with {m} positive(s) and {n} negative(s); returning NaN",
            DegenerateDataWarning,
            stacklevel=2,
        )
        return aucs, nan_cov
    d10 = v10 - aucs
    d01 = v01 - aucs
    cov = (d10.T @ d10) / ((m - 1) * m) + (d01.T @ d01) / ((n - 1) * n)
    return aucs, cov


def delong_test(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike) -> DeLongResult:
    """Paired two-sided DeLong test of AUROC(a) = AUROC(b) on the same cases.

    Matches pROC: z = diff / se; when se is 0, z = 0 if diff is 0 (p = 1), else +-inf (p = 0).
    Degenerate labels give NaN fields (with a warning).
    """
    y = check_labels(y_true)
    a = check_scores(scores_a, y.size, name="scores_a")
    b = check_scores(scores_b, y.size, name="scores_b")
    aucs, cov = delong_auc_cov(y, np.column_stack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if math.isnan(var):
        return DeLongResult(float(aucs[0]), float(aucs[1]), diff, math.nan, math.nan, math.nan)
    se, z, p = wald_test(diff, var)
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, z, p, se)


def wald_test(diff: float, var: float) -> tuple[float, float, float]:
    """(SE, z, two-sided p) of a difference with variance `var` (a zero SE: z 0 without a difference, else ±inf)."""
    se = math.sqrt(max(var, 0.0))
    if se > 0:
        z = diff / se
    elif diff == 0:
        z = 0.0
    else:
        z = math.copysign(math.inf, diff)
    return se, z, float(2.0 * norm.sf(abs(z)))


def delong_ci(y_true: ArrayLike, scores: ArrayLike, alpha: float = 0.05) -> tuple[float, float, float]:
    """(auc, low, high): normal (1 - alpha) interval with DeLong's variance, clipped to [0, 1] like pROC.

    With a single positive or negative the bounds are NaN; with one class absent all three are NaN.
    """
    if not 0.0 < alpha < 1.0:
        raise LungpriorError(f"alpha: must be in (0, 1), got {alpha!r}")
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    aucs, cov = delong_auc_cov(y, s)
    auc, var = float(aucs[0]), float(cov[0, 0])
    if math.isnan(var):
        return auc, math.nan, math.nan
    se = math.sqrt(max(var, 0.0))
    half = float(norm.ppf(1.0 - alpha / 2.0)) * se
    return auc, min(max(auc - half, 0.0), 1.0), min(max(auc + half, 0.0), 1.0)


def holm_adjust(pvalues: ArrayLike) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the input order.

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)), so the result is monotone
    and capped at 1. NaN entries stay NaN and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise LungpriorError(f"pvalues: expected a 1-D array, got shape {p.shape}")
    ok = ~np.isnan(p)
    bad = ok & ((p < 0) | (p > 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise LungpriorError(f"pvalues: value {p[i].item()!r} at index {i} is not a probability in [0, 1]")
    out = np.full(p.shape, np.nan)
    vals = p[ok]
    m = vals.size
    if m == 0:
        return out
    order = np.argsort(vals, kind="stable")
    scaled = (m - np.arange(m)) * vals[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out[ok] = adjusted
    return out


def holm_adjust_bounds(pvalues: ArrayLike, bounds: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and whether each is an upper bound.

    `bounds[i]` is True when p[i] is only known as "p ≤ value" (a bootstrap p at its floor). An adjusted value
    is a bound when every term of Holm's running maximum that attains it comes from a bound; an adjusted value of
    1 is never a bound ("p ≤ 1" says nothing).
    """
    p = np.asarray(pvalues, dtype=float)
    b = np.asarray(bounds, dtype=bool)
    if b.shape != p.shape:
        raise LungpriorError(f"bounds: expected shape {p.shape}, got {b.shape}")
    adjusted = holm_adjust(p)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    terms = np.minimum((ok.size - np.arange(ok.size)) * p[order], 1.0)
    out = np.zeros(p.shape, dtype=bool)
    for i, idx in enumerate(order):
        attained = np.isclose(terms[: i + 1], adjusted[idx], rtol=1e-12, atol=0.0)
        out[idx] = bool(b[order[: i + 1]][attained].all()) and adjusted[idx] < 1.0
    return adjusted, out
