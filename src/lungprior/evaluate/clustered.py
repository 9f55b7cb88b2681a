"""Obuchowski's clustered AUROC variance (Biometrics 1997) and the paired test built on it.

With several films per patient, a patient's films are not independent: DeLong's variance, which treats each
film as a unit, is then too small. Obuchowski sums DeLong's structural components (placements) per cluster
(patient) and takes their variance over clusters. For cluster i with m_i positive and n_i negative films,
V10_i (V01_i) the sum of its positives' (negatives') placements, M and N the total positives and negatives,
I the number of clusters and theta the AUROC,

    D_i = (V10_i - m_i theta) / M + (V01_i - n_i theta) / N,   var(theta) = I / (I - 1) * sum_i D_i^2,

which expands to Obuchowski's S10 / M + S01 / N + 2 S11 / (M N). The covariance of two AUROCs on the same
films uses the cross-products of their D_i, so the paired difference has variance I / (I - 1) * sum_i
(D_i^a - D_i^b)^2. With one film per patient this is DeLong's variance up to the finite-sample factors
(I / (I - 1) instead of M / (M - 1) and N / (N - 1)).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

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


def cluster_components(y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and the per-cluster components D (I, k) for scores of shape (n,) or (n, k).

    NaN AUROCs and D when a class is absent (with a warning).
    """
    y = check_labels(y_true)
    s = check_scores(scores, y.size, ndim=2 if np.ndim(scores) == 2 else 1).reshape(y.size, -1)
    codes, n_groups = group_codes(groups, y.size)
    k = s.shape[1]
    if warn_if_degenerate(y, "clustered AUROC"):
        return np.full(k, np.nan), np.full((n_groups, k), np.nan)
    pos = y == 1
    v10, v01 = _placements(y, s)
    m, n = v10.shape[0], v01.shape[0]
    aucs = v10.mean(axis=0)
    d = np.zeros((n_groups, k))
    np.add.at(d, codes[pos], (v10 - aucs) / m)
    np.add.at(d, codes[~pos], (v01 - aucs) / n)
    return aucs, d


def obuchowski_auc_cov(y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and their clustered covariance matrix (k, k); NaN covariance with fewer than 2 clusters."""
    aucs, d = cluster_components(y_true, scores, groups)
    n_groups = d.shape[0]
    if n_groups < 2 or np.isnan(aucs).any():
        return aucs, np.full((d.shape[1],) * 2, np.nan)
    return aucs, n_groups / (n_groups - 1) * (d.T @ d)


def _finish(auc_a: float, auc_b: float, var: float, alpha: float) -> PairedTest:
    diff = auc_a - auc_b
    if math.isnan(var):
        return PairedTest(auc_a, auc_b, diff, *(math.nan,) * 5)
    se, z, p = wald_test(diff, var)
    half = float(norm.ppf(1.0 - alpha / 2.0)) * se
    return PairedTest(auc_a, auc_b, diff, se, z, p, diff - half, diff + half)


def obuchowski_test(
    y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike, alpha: float = 0.05,
) -> PairedTest:
    """Paired two-sided test of AUROC(a) = AUROC(b) with clusters (patients): z = diff / clustered SE.

    The interval is the Wald interval diff +- z_{1-alpha/2} SE from the same variance.
    """
    y = check_labels(y_true)
    a = check_scores(scores_a, y.size, name="scores_a")
    b = check_scores(scores_b, y.size, name="scores_b")
    aucs, d = cluster_components(y, np.column_stack([a, b]), groups)
    if np.isnan(aucs).any():
        return PairedTest(float(aucs[0]), float(aucs[1]), math.nan, *(math.nan,) * 5)
    n_groups = d.shape[0]
    if n_groups < 2:
        warnings.warn("clustered AUROC variance needs at least 2 patients; returning NaN",
                      DegenerateDataWarning, stacklevel=2)
        var = math.nan
    else:
        var = float(n_groups / (n_groups - 1) * np.sum((d[:, 0] - d[:, 1]) ** 2))
    return _finish(float(aucs[0]), float(aucs[1]), var, alpha)


def pooled_obuchowski_test(
    y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike, alpha: float = 0.05,
) -> PairedTest:
    """Seed-pooled paired test: scores of shape (n, S), one column per seed, on the same films.

    The difference is the mean over seeds of AUROC(a_s) - AUROC(b_s); its variance averages each patient's
    component difference over seeds and then takes the clustered variance over patients once.
    """
    return pooled_macro_test([y_true], [scores_a], [scores_b], groups, alpha)


def pooled_macro_test(
    y_true: list[ArrayLike], scores_a: list[ArrayLike], scores_b: list[ArrayLike], groups: ArrayLike,
    alpha: float = 0.05,
) -> PairedTest:
    """Paired test of the mean over classes (list items) and seeds (columns of each (n, S) score array) of
    AUROC(a) - AUROC(b); each patient's components are averaged over classes and seeds, the clustered variance
    is taken over patients once. Classes with one label only are left out."""
    comps, aucs_a, aucs_b = [], [], []
    for y_c, a_c, b_c in zip(y_true, scores_a, scores_b, strict=True):
        y = check_labels(y_c)
        if warn_if_degenerate(y, "pooled AUROC"):
            continue
        a = check_scores(a_c, y.size, name="scores_a", ndim=2)
        b = check_scores(b_c, y.size, name="scores_b", ndim=2)
        auc_a, d_a = cluster_components(y, a, groups)
        auc_b, d_b = cluster_components(y, b, groups)
        aucs_a.append(auc_a.mean())
        aucs_b.append(auc_b.mean())
        comps.append((d_a - d_b).mean(axis=1))
    if not comps:
        return PairedTest(*(math.nan,) * 8)
    pooled = np.mean(comps, axis=0)
    n_groups = pooled.size
    var = float(n_groups / (n_groups - 1) * np.sum(pooled**2)) if n_groups > 1 else math.nan
    return _finish(float(np.mean(aucs_a)), float(np.mean(aucs_b)), var, alpha)


def delong_paired(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, alpha: float = 0.05) -> PairedTest:
    """DeLong's paired test (films independent) with the Wald interval of the difference from its variance."""
    from lungprior.evaluate.delong import delong_test

    r = delong_test(y_true, scores_a, scores_b)
    var = r.se**2 if not math.isnan(r.se) else math.nan
    return _finish(r.auc_a, r.auc_b, var, alpha)
