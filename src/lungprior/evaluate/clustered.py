"""Obuchowski's clustered AUROC variance (Biometrics 1997) and the paired test built on it.

With several films per patient, a patient's films are not independent: DeLong's variance, which treats each
film as a unit, is then too small. Obuchowski sums DeLong's structural components (placements) per cluster
(patient). For cluster i with m_i positive and n_i negative films, V10_i (V01_i) the sum of its positives'
(negatives') placements, M and N the total positives and negatives, theta the AUROC, I the number of clusters
and I10 (I01) the number of clusters with at least one positive (negative) film:

    S10 = I10 / ((I10 - 1) M) * sum_i (V10_i - m_i theta)^2
    S01 = I01 / ((I01 - 1) N) * sum_i (V01_i - n_i theta)^2
    S11 = I / (I - 1)         * sum_i (V10_i - m_i theta)(V01_i - n_i theta)
    var(theta) = S10 / M + S01 / N + 2 S11 / (M N).

The covariance of two AUROCs on the same films uses the same sums with the cross-products of the two
models' terms (Obuchowski's S10^(12), S01^(12), S11^(12) + S11^(21)). With one film per patient S11 = 0,
I10 = M, I01 = N, and the variance is DeLong's exactly. With fewer than two patients on a side the variance
is undefined (NaN).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm
from scipy.stats import t as student_t

from lungprior.evaluate.bootstrap import group_codes
from lungprior.evaluate.delong import _placements, wald_test
from lungprior.evaluate.scores import DegenerateDataWarning, check_labels, check_scores, warn_if_degenerate


@dataclass(frozen=True)
class PairedTest:
    """A paired two-sided test of AUROC(a) = AUROC(b): diff = auc_a - auc_b, its SE, z, p and a (1 - alpha) CI."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Components:
    """Per-cluster terms of one or more AUROCs on the same films.

    pos (I, k) = (V10_i - m_i theta) / M, neg (I, k) = (V01_i - n_i theta) / N; `c10`, `c01`, `c11` are the
    factors I10 / (I10 - 1), I01 / (I01 - 1) and I / (I - 1) (inf when the count is below 2).
    """

    aucs: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    c10: float
    c01: float
    c11: float

    def cov(self, x: np.ndarray | None = None) -> np.ndarray:
        """Obuchowski's covariance of the linear combinations `x` (k, r) of the AUROCs (default: identity)."""
        p, q = (self.pos, self.neg) if x is None else (self.pos @ x, self.neg @ x)
        if not all(math.isfinite(c) for c in (self.c10, self.c01, self.c11)):
            return np.full((p.shape[1],) * 2, np.nan)
        return self.c10 * (p.T @ p) + self.c01 * (q.T @ q) + self.c11 * (p.T @ q + q.T @ p)


def _factor(count: int) -> float:
    return count / (count - 1) if count > 1 else math.inf


def cluster_components(y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> Components:
    """AUROCs (k,) and Obuchowski's per-cluster terms for scores of shape (n,) or (n, k).

    NaN AUROCs and terms when a class is absent (with a warning).
    """
    y = check_labels(y_true)
    s = check_scores(scores, y.size, ndim=2 if np.ndim(scores) == 2 else 1).reshape(y.size, -1)
    codes, n_groups = group_codes(groups, y.size)
    k = s.shape[1]
    pos = y == 1
    i10, i01 = np.unique(codes[pos]).size, np.unique(codes[~pos]).size
    factors = (_factor(i10), _factor(i01), _factor(n_groups))
    if warn_if_degenerate(y, "clustered AUROC"):
        nan = np.full((n_groups, k), np.nan)
        return Components(np.full(k, np.nan), nan, nan.copy(), *factors)
    v10, v01 = _placements(y, s)
    m, n = v10.shape[0], v01.shape[0]
    aucs = v10.mean(axis=0)
    p, q = np.zeros((n_groups, k)), np.zeros((n_groups, k))
    np.add.at(p, codes[pos], (v10 - aucs) / m)
    np.add.at(q, codes[~pos], (v01 - aucs) / n)
    return Components(aucs, p, q, *factors)


def obuchowski_auc_cov(y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and their clustered covariance matrix (k, k); NaN covariance with fewer than 2 patients
    with, or without, the finding."""
    c = cluster_components(y_true, scores, groups)
    if np.isnan(c.aucs).any():
        return c.aucs, np.full((c.aucs.size,) * 2, np.nan)
    return c.aucs, c.cov()


def side_patients(y: np.ndarray, groups: ArrayLike | None) -> tuple[int, int]:
    """(I10, I01): patients with at least one positive film, and with at least one negative film."""
    codes, _ = group_codes(groups, y.size)
    return int(np.unique(codes[y == 1]).size), int(np.unique(codes[y == 0]).size)


def t_df(y: np.ndarray, groups: ArrayLike | None) -> float:
    """Degrees of freedom of the small-sample t reference: min(I10, I01) - 1 (NaN below 2 patients a side)."""
    fewest = min(side_patients(y, groups))
    return float(fewest - 1) if fewest > 1 else math.nan


def _finish(auc_a: float, auc_b: float, var: float, alpha: float, df: float | None = None) -> PairedTest:
    """The Wald test and interval of auc_a - auc_b with variance `var`: normal reference, or t with `df`.

    The interval is cut to [-1, 1], where an AUROC difference lies (with few patients a t interval reaches past it).
    """
    diff = auc_a - auc_b
    if math.isnan(var) or (df is not None and not df > 0):
        return PairedTest(auc_a, auc_b, diff, *(math.nan,) * 5)
    se, z, p = wald_test(diff, var)
    if df is None:
        half = float(norm.ppf(1.0 - alpha / 2.0)) * se
    else:
        p = float(2.0 * student_t.sf(abs(z), df)) if math.isfinite(z) else 0.0
        half = float(student_t.ppf(1.0 - alpha / 2.0, df)) * se
    return PairedTest(auc_a, auc_b, diff, se, z, p, max(-1.0, diff - half), min(1.0, diff + half))


def _warn_too_few() -> None:
    warnings.warn("clustered AUROC variance needs at least 2 patients with and 2 without the finding; "
                  "returning NaN", DegenerateDataWarning, stacklevel=3)


def obuchowski_test(
    y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike, alpha: float = 0.05,
    t_reference: bool = False,
) -> PairedTest:
    """Paired two-sided test of AUROC(a) = AUROC(b) with clusters (patients): z = diff / clustered SE.

    The variance of the difference is Obuchowski's with the published factors; the interval is the Wald
    interval diff +- q SE from the same variance, q the normal quantile or, with `t_reference`, the t quantile
    with min(I10, I01) - 1 degrees of freedom (and the p-value from that t).
    """
    y = check_labels(y_true)
    a = check_scores(scores_a, y.size, name="scores_a")
    b = check_scores(scores_b, y.size, name="scores_b")
    c = cluster_components(y, np.column_stack([a, b]), groups)
    if np.isnan(c.aucs).any():
        return PairedTest(float(c.aucs[0]), float(c.aucs[1]), math.nan, *(math.nan,) * 5)
    var = float(c.cov(np.array([[1.0], [-1.0]]))[0, 0])
    if math.isnan(var):
        _warn_too_few()
    return _finish(float(c.aucs[0]), float(c.aucs[1]), var, alpha, t_df(y, groups) if t_reference else None)


def pooled_obuchowski_test(
    y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike, alpha: float = 0.05,
) -> PairedTest:
    """Seed-pooled paired test: scores of shape (n, S), one column per seed, on the same films.

    The difference is the mean over seeds of AUROC(a_s) - AUROC(b_s); its variance is Obuchowski's variance of
    that linear combination of the 2S AUROCs (each patient's terms averaged over seeds).
    """
    return pooled_macro_test([y_true], [scores_a], [scores_b], groups, alpha)


def pooled_macro_test(
    y_true: list[ArrayLike], scores_a: list[ArrayLike], scores_b: list[ArrayLike], groups: ArrayLike,
    alpha: float = 0.05,
) -> PairedTest:
    """Paired test of the mean over classes (list items) and seeds (columns of each (n, S) score array) of
    AUROC(a) - AUROC(b). Classes with one label only, or fewer than 2 patients on a side, are left out.

    Within a class the variance uses Obuchowski's published factors; between classes (different labels on
    the same patients) the covariance of the per-patient terms is scaled by I / (I - 1).
    """
    comps, aucs_a, aucs_b = [], [], []
    for y_c, a_c, b_c in zip(y_true, scores_a, scores_b, strict=True):
        y = check_labels(y_c)
        if warn_if_degenerate(y, "pooled AUROC"):
            continue
        a = check_scores(a_c, y.size, name="scores_a", ndim=2)
        b = check_scores(b_c, y.size, name="scores_b", ndim=2)
        c = cluster_components(y, np.column_stack([a, b]), groups)
        if not (math.isfinite(c.c10) and math.isfinite(c.c01)):
            _warn_too_few()
            continue
        s = a.shape[1]
        x = np.r_[np.full(s, 1.0 / s), np.full(s, -1.0 / s)]
        aucs_a.append(c.aucs[:s].mean())
        aucs_b.append(c.aucs[s:].mean())
        comps.append((c.pos @ x, c.neg @ x, c.c10, c.c01, c.c11))
    if not comps:
        return PairedTest(*(math.nan,) * 8)
    k = len(comps)
    p = np.column_stack([t[0] for t in comps]) / k  # (I, classes): each class weighted 1 / k
    q = np.column_stack([t[1] for t in comps]) / k
    c11 = comps[0][4]
    if not math.isfinite(c11):
        return _finish(float(np.mean(aucs_a)), float(np.mean(aucs_b)), math.nan, alpha)
    total = (p + q).sum(axis=1)
    var = c11 * float(total @ total)  # every term with I / (I - 1) ...
    for j, (_, _, c10, c01, _) in enumerate(comps):  # ... then each class's own sides with its published factor
        var += (c10 - c11) * float(p[:, j] @ p[:, j]) + (c01 - c11) * float(q[:, j] @ q[:, j])
    return _finish(float(np.mean(aucs_a)), float(np.mean(aucs_b)), var, alpha)


def delong_paired(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, alpha: float = 0.05,
                  t_reference: bool = False) -> PairedTest:
    """DeLong's paired test (films independent) with the Wald interval of the difference from its variance;
    with `t_reference`, p and interval from a t with min(positives, negatives) - 1 degrees of freedom."""
    from lungprior.evaluate.delong import delong_test

    r = delong_test(y_true, scores_a, scores_b)
    var = r.se**2 if not math.isnan(r.se) else math.nan
    df = t_df(check_labels(y_true), None) if t_reference else None
    return _finish(r.auc_a, r.auc_b, var, alpha, df)
