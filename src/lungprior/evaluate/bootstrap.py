"""Patient-clustered bootstrap: percentile intervals for one metric and for paired macro-AUROC differences.

A resample draws patients (groups) with replacement and keeps all of a drawn patient's rows together. It is
represented as integer row weights (how often each row appears), so AUROC and AUPRC are computed for
many resamples at once with numpy. Same seed, same resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lungprior.errors import LungpriorError
from lungprior.evaluate.scores import (
    DegenerateDataWarning,
    auprc,
    auroc,
    check_labels,
    check_scores,
    class_counts,
)

Metric = Literal["auroc", "auprc"] | Callable[[np.ndarray, np.ndarray], float]
_CHUNK_CELLS = 2_000_000  # resamples x rows held in memory at once
_SKIP_WARN_SHARE = 0.05


class BootstrapCI(tuple):
    """(estimate, low, high); also `.n_used` and `.n_skipped` resamples (metric undefined in skipped ones)."""

    n_used: int
    n_skipped: int

    def __new__(cls, estimate: float, low: float, high: float, n_used: int, n_skipped: int) -> BootstrapCI:
        obj = super().__new__(cls, (float(estimate), float(low), float(high)))
        obj.n_used = int(n_used)
        obj.n_skipped = int(n_skipped)
        return obj

    @property
    def estimate(self) -> float:
        return self[0]

    @property
    def low(self) -> float:
        return self[1]

    @property
    def high(self) -> float:
        return self[2]


def _check_settings(n_resamples: int, alpha: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise LungpriorError(f"n_resamples: must be a positive integer, got {n_resamples!r}")
    if not 0.0 < alpha < 1.0:
        raise LungpriorError(f"alpha: must be in (0, 1), got {alpha!r}")


def group_codes(groups: ArrayLike | None, n: int) -> tuple[np.ndarray, int]:
    """Integer group code per row (0..G-1) and G; `None` makes every row its own group."""
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups, dtype=object)
    if g.ndim != 1 or g.size != n:
        raise LungpriorError(f"groups: expected {n} patient ids, got shape {g.shape}")
    codes, uniques = pd.factorize(g)
    if (codes < 0).any():
        raise LungpriorError(f"groups: missing patient id at index {int(np.argmax(codes < 0))}")
    return codes.astype(np.intp), len(uniques)


def _weight_chunks(codes: np.ndarray, n_groups: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield row-weight blocks (c, n): draw patients with replacement, count them, map counts to rows."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(codes.size, n_groups, 1)))
    done = 0
    while done < n_resamples:
        c = min(chunk, n_resamples - done)
        draws = rng.integers(0, n_groups, size=(c, n_groups))
        flat = (draws + n_groups * np.arange(c)[:, None]).ravel()
        counts = np.bincount(flat, minlength=c * n_groups).reshape(c, n_groups)
        yield counts[:, codes]
        done += c


def cluster_weights(groups: ArrayLike, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Row weights (n_resamples, n) of the patient-clustered bootstrap; rows of one patient share a weight.

    These are the resamples `bootstrap_metric_ci` and `paired_bootstrap_diff` use for the same seed.
    """
    _check_settings(n_resamples, 0.05)
    codes, n_groups = group_codes(groups, np.asarray(groups, dtype=object).size)
    return np.concatenate(list(_weight_chunks(codes, n_groups, n_resamples, seed)))


def _runs(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted vector."""
    return np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])


def weighted_auroc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC per row of weights w (r, n) (ties count 1/2); NaN where a class has zero weight.

    Equals `roc_auc_score(y, s, sample_weight=w[i])` for each i.
    """
    order = np.argsort(s, kind="stable")
    starts = _runs(s[order])
    ys = y[order].astype(float)
    ws = np.asarray(w, dtype=float)[:, order]
    wp = np.add.reduceat(ws * ys, starts, axis=1)
    wn = np.add.reduceat(ws * (1.0 - ys), starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    num = (wp * (below + 0.5 * wn)).sum(axis=1)
    denom = wp.sum(axis=1) * wn.sum(axis=1)
    out = np.full(num.shape, np.nan)
    np.divide(num, denom, out=out, where=denom > 0)
    return out


def weighted_auprc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision per row of weights w (r, n); NaN where positives or negatives have zero weight.

    Equals `average_precision_score(y, s, sample_weight=w[i])` for each i.
    """
    order = np.argsort(-s, kind="stable")
    starts = _runs(s[order])
    ys = y[order].astype(float)
    ws = np.asarray(w, dtype=float)[:, order]
    tps = np.cumsum(np.add.reduceat(ws * ys, starts, axis=1), axis=1)
    fps = np.cumsum(np.add.reduceat(ws * (1.0 - ys), starts, axis=1), axis=1)
    called = tps + fps
    precision = np.zeros_like(tps)
    np.divide(tps, called, out=precision, where=called > 0)
    total_pos = tps[:, -1:]
    recall = np.zeros_like(tps)
    np.divide(tps, total_pos, out=recall, where=total_pos > 0)
    ap = (np.diff(recall, axis=1, prepend=0.0) * precision).sum(axis=1)
    ap[(total_pos[:, 0] == 0) | (fps[:, -1] == 0)] = np.nan
    return ap


def _generic(metric: Callable[[np.ndarray, np.ndarray], float], y: np.ndarray, s: np.ndarray,
             w: np.ndarray) -> np.ndarray:
    """Call `metric` on each resample (rows repeated by weight); NaN where one class is missing."""
    rows = np.arange(y.size)
    out = np.full(w.shape[0], np.nan)
    for i, wi in enumerate(w):
        idx = np.repeat(rows, wi)
        n_pos, n_neg = class_counts(y[idx])
        if n_pos and n_neg:
            out[i] = float(metric(y[idx], s[idx]))
    return out


def _percentile(values: np.ndarray, alpha: float) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _warn_skipped(n_skipped: int, n_resamples: int, what: str) -> None:
    if n_skipped and n_skipped >= _SKIP_WARN_SHARE * n_resamples:
        warnings.warn(
            f"{what}: {n_skipped} of {n_resamples} bootstrap resamples skipped (a class absent); "
            "the interval may be unreliable",
            DegenerateDataWarning,
            stacklevel=3,
        )


def bootstrap_metric_ci(
    y_true: ArrayLike,
    scores: ArrayLike,
    groups: ArrayLike | None,
    metric: Metric = "auroc",
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapCI:
    """Point estimate and percentile (1 - alpha) interval of `metric` under a patient-clustered bootstrap.

    `metric` is "auroc", "auprc" (vectorised) or a callable `metric(y, scores) -> float`. `groups` holds a
    patient id per row (None: rows are independent). Resamples lacking a class are skipped and counted in
    `.n_skipped`; a warning is issued when they reach 5% of the resamples.
    """
    _check_settings(n_resamples, alpha)
    y = check_labels(y_true)
    s = check_scores(scores, y.size)
    codes, n_groups = group_codes(groups, y.size)
    if metric == "auroc":
        estimate, batch = auroc(y, s), weighted_auroc
    elif metric == "auprc":
        estimate, batch = auprc(y, s), weighted_auprc
    elif callable(metric):
        n_pos, n_neg = class_counts(y)
        estimate = float(metric(y, s)) if n_pos and n_neg else float("nan")

        def batch(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
            return _generic(metric, y, s, w)
    else:
        raise LungpriorError(f"metric: unknown metric {metric!r} (use 'auroc', 'auprc' or a callable)")
    if np.isnan(estimate):
        return BootstrapCI(np.nan, np.nan, np.nan, 0, n_resamples)
    values = np.concatenate([batch(y, s, w) for w in _weight_chunks(codes, n_groups, n_resamples, seed)])
    used = values[~np.isnan(values)]
    _warn_skipped(n_resamples - used.size, n_resamples, "bootstrap_metric_ci")
    low, high = _percentile(used, alpha)
    return BootstrapCI(estimate, low, high, used.size, n_resamples - used.size)


def bootstrap_macro_auroc_ci(
    y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike | None, n_resamples: int = 1000, alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapCI:
    """Macro AUROC (mean over the classes having both labels) with a patient-clustered percentile interval.

    All classes are scored on the same resamples; a resample lacking a class among those used is skipped.
    """
    _check_settings(n_resamples, alpha)
    y = check_labels(_as_matrix(y_true), ndim=2)
    s = check_scores(_as_matrix(scores), y.shape[0], ndim=2)
    codes, n_groups = group_codes(groups, y.shape[0])
    classes = [c for c in range(y.shape[1]) if all(class_counts(y[:, c]))]
    if not classes:
        return BootstrapCI(np.nan, np.nan, np.nan, 0, n_resamples)
    estimate = float(np.mean([auroc(y[:, c], s[:, c]) for c in classes]))
    values = np.concatenate([
        np.column_stack([weighted_auroc(y[:, c], s[:, c], w) for c in classes]).mean(axis=1)
        for w in _weight_chunks(codes, n_groups, n_resamples, seed)
    ])
    used = values[~np.isnan(values)]
    _warn_skipped(n_resamples - used.size, n_resamples, "bootstrap_macro_auroc_ci")
    low, high = _percentile(used, alpha)
    return BootstrapCI(estimate, low, high, used.size, n_resamples - used.size)


def _as_matrix(a: ArrayLike) -> ArrayLike:
    return a if np.ndim(a) != 1 else np.asarray(a)[:, None]


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided p of "difference 0" from bootstrap differences (percentile-interval inversion, +1 correction
    so it is never 0): min(1, 2 * min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1)))."""
    d = np.asarray(diffs, dtype=float)
    below = (1 + np.count_nonzero(d <= 0)) / (d.size + 1)
    above = (1 + np.count_nonzero(d >= 0)) / (d.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def paired_bootstrap_diff(
    y_true: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    groups: ArrayLike | None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Macro-AUROC difference a - b with a paired, patient-clustered percentile bootstrap.

    y_true, scores_a, scores_b have shape (n, k) (or (n,) for one class). Macro AUROC is the mean over
    the classes having both labels in the full data; a resample lacking a class among these is skipped.
    Both models are scored on the same resamples. Two-sided p-value (percentile-interval inversion, with
    B resamples used and the usual +1 correction so it is never 0):
    p = min(1, 2 * min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1))).
    Returns diff, low, high, p, auc_a, auc_b (macro), classes (column indices used), n_used, n_skipped.
    """
    _check_settings(n_resamples, alpha)
    y = check_labels(_as_matrix(y_true), ndim=2)
    a = check_scores(_as_matrix(scores_a), y.shape[0], name="scores_a", ndim=2)
    b = check_scores(_as_matrix(scores_b), y.shape[0], name="scores_b", ndim=2)
    for name, arr in (("scores_a", a), ("scores_b", b)):
        if arr.shape != y.shape:
            raise LungpriorError(f"{name}: shape {arr.shape} does not match y_true shape {y.shape}")
    codes, n_groups = group_codes(groups, y.shape[0])
    classes = [c for c in range(y.shape[1]) if all(class_counts(y[:, c]))]
    for c in sorted(set(range(y.shape[1])) - set(classes)):
        warnings.warn(f"class column {c}: only one label present; left out of the macro AUROC",
                      DegenerateDataWarning, stacklevel=2)
    nan = float("nan")
    result: dict[str, Any] = {"diff": nan, "low": nan, "high": nan, "p": nan, "auc_a": nan, "auc_b": nan,
                              "classes": classes, "n_used": 0, "n_skipped": n_resamples}
    if not classes:
        return result
    auc_a = float(np.mean([auroc(y[:, c], a[:, c]) for c in classes]))
    auc_b = float(np.mean([auroc(y[:, c], b[:, c]) for c in classes]))
    diffs = []
    for w in _weight_chunks(codes, n_groups, n_resamples, seed):
        per_a = np.column_stack([weighted_auroc(y[:, c], a[:, c], w) for c in classes])
        per_b = np.column_stack([weighted_auroc(y[:, c], b[:, c], w) for c in classes])
        diffs.append(per_a.mean(axis=1) - per_b.mean(axis=1))
    d = np.concatenate(diffs)
    d = d[~np.isnan(d)]
    _warn_skipped(n_resamples - d.size, n_resamples, "paired_bootstrap_diff")
    low, high = _percentile(d, alpha)
    if d.size:
        result["p"] = bootstrap_p(d)
    result.update(diff=auc_a - auc_b, low=low, high=high, auc_a=auc_a, auc_b=auc_b,
                  n_used=int(d.size), n_skipped=int(n_resamples - d.size))
    return result


def bootstrap_seed_mean_auroc_ci(
    y_true: ArrayLike, scores: ArrayLike, groups: ArrayLike | None, n_resamples: int = 1000, alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapCI:
    """Mean AUROC over seeds (columns of scores (n, S), the same films) with one patient-clustered percentile
    interval: every resample scores all seeds on the same patients and averages them."""
    _check_settings(n_resamples, alpha)
    y = check_labels(y_true)
    s = check_scores(_as_matrix(scores), y.size, ndim=2)
    codes, n_groups = group_codes(groups, y.size)
    if not all(class_counts(y)):
        return BootstrapCI(np.nan, np.nan, np.nan, 0, n_resamples)
    estimate = float(np.mean([auroc(y, s[:, k]) for k in range(s.shape[1])]))
    values = np.concatenate([np.column_stack([weighted_auroc(y, s[:, k], w) for k in range(s.shape[1])]).mean(axis=1)
                             for w in _weight_chunks(codes, n_groups, n_resamples, seed)])
    used = values[~np.isnan(values)]
    _warn_skipped(n_resamples - used.size, n_resamples, "bootstrap_seed_mean_auroc_ci")
    low, high = _percentile(used, alpha)
    return BootstrapCI(estimate, low, high, used.size, n_resamples - used.size)
