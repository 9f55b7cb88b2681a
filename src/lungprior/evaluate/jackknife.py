"""Leave-one-patient-out jackknife of paired AUROC differences, with a small-sample t reference.

Deleting patient i removes its films from both sides of every pair. With M positives and N negatives in all,
m_i and n_i of them in patient i, V10_i and V01_i the sums of its films' DeLong placements and W_i the
within-patient pair score (its positives against its own negatives, ties 1/2), the AUROC without patient i is

    theta_(-i) = (M N theta - N V10_i - M V01_i + W_i) / ((M - m_i)(N - n_i)),

exact and O(n log n) for all patients at once. The jackknife variance of a difference d is
(I - 1) / I * sum_i (d_(-i) - mean d_(-))^2. In simulated studies with few or very unequal clusters and
rare findings it holds the level where Obuchowski's variance with a normal reference does not
(docs/statistics.md); the p-value and interval use a t with min(I10, I01) - 1 degrees of freedom.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lungprior.evaluate.bootstrap import group_codes
from lungprior.evaluate.clustered import PairedTest, _finish, t_df
from lungprior.evaluate.delong import _placements
from lungprior.evaluate.scores import DegenerateDataWarning, check_labels, check_scores, warn_if_degenerate


def leave_one_out_aucs(y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike | None) -> np.ndarray:
    """AUROC of each score column without each patient, shape (I, k); NaN where a side would be empty."""
    y = check_labels(y_true)
    s = check_scores(scores, y.size, ndim=2 if np.ndim(scores) == 2 else 1).reshape(y.size, -1)
    codes, n_groups = group_codes(groups, y.size)
    pos = y == 1
    big_m, big_n = int(pos.sum()), int((~pos).sum())
    v10, v01 = _placements(y, s)
    theta = v10.mean(axis=0)
    sums10, sums01 = np.zeros((n_groups, s.shape[1])), np.zeros((n_groups, s.shape[1]))
    np.add.at(sums10, codes[pos], v10)
    np.add.at(sums01, codes[~pos], v01)
    ranks_all = pd.DataFrame(s).groupby(codes).rank(method="average").to_numpy()
    ranks_pos = pd.DataFrame(s[pos]).groupby(codes[pos]).rank(method="average").to_numpy()
    within = np.zeros_like(sums10)
    np.add.at(within, codes[pos], ranks_all[pos] - ranks_pos)  # own negatives below each positive
    m_i = np.bincount(codes[pos], minlength=n_groups)[:, None]
    n_i = np.bincount(codes[~pos], minlength=n_groups)[:, None]
    num = big_m * big_n * theta - big_n * sums10 - big_m * sums01 + within
    den = ((big_m - m_i) * (big_n - n_i)).astype(float)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def jackknife_variance(values: np.ndarray) -> float:
    """(I - 1) / I * sum (v_i - mean)^2 over the finite leave-one-out values; NaN with fewer than 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan
    return float((v.size - 1) / v.size * np.sum((v - v.mean()) ** 2))


def jackknife_test(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike | None,
                   alpha: float = 0.05) -> PairedTest:
    """Paired two-sided test of AUROC(a) = AUROC(b): jackknife SE over patients, t with min(I10, I01) - 1 df.

    NaN p and interval (with a warning) with fewer than 2 patients with, or without, the finding.
    """
    y = check_labels(y_true)
    a = check_scores(scores_a, y.size, name="scores_a")
    b = check_scores(scores_b, y.size, name="scores_b")
    if warn_if_degenerate(y, "jackknife AUROC"):
        return PairedTest(*(math.nan,) * 8)
    v10, _ = _placements(y, np.column_stack([a, b]))
    auc_a, auc_b = (float(x) for x in v10.mean(axis=0))
    df = t_df(y, groups)
    if math.isnan(df):
        warnings.warn("jackknife AUROC variance needs at least 2 patients with and 2 without the finding; "
                      "returning NaN", DegenerateDataWarning, stacklevel=2)
        return _finish(auc_a, auc_b, math.nan, alpha)
    loo = leave_one_out_aucs(y, np.column_stack([a, b]), groups)
    return _finish(auc_a, auc_b, jackknife_variance(loo[:, 0] - loo[:, 1]), alpha, df)


def jackknife_macro_test(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, groups: ArrayLike | None,
                         alpha: float = 0.05) -> PairedTest:
    """Paired test of the macro-AUROC difference (mean over the columns of (n, k) arrays, every column with
    both labels): jackknife SE over patients, t with the smallest min(I10, I01) - 1 over the columns."""
    y = check_labels(y_true, ndim=2)
    a = check_scores(scores_a, y.shape[0], name="scores_a", ndim=2)
    b = check_scores(scores_b, y.shape[0], name="scores_b", ndim=2)
    aucs_a, aucs_b, diffs, dfs = [], [], [], []
    for j in range(y.shape[1]):
        loo = leave_one_out_aucs(y[:, j], np.column_stack([a[:, j], b[:, j]]), groups)
        v10, _ = _placements(y[:, j], np.column_stack([a[:, j], b[:, j]]))
        aucs_a.append(v10[:, 0].mean())
        aucs_b.append(v10[:, 1].mean())
        diffs.append(loo[:, 0] - loo[:, 1])
        dfs.append(t_df(y[:, j], groups))
    df = min(dfs)
    var = jackknife_variance(np.mean(diffs, axis=0)) if math.isfinite(df) else math.nan
    return _finish(float(np.mean(aucs_a)), float(np.mean(aucs_b)), var, alpha, df)
