"""Patient-clustered bootstrap: weighted metrics, intact patients, coverage, determinism, paired diff."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from lungprior.errors import LungpriorError
from lungprior.evaluate.stats import (
    DegenerateDataWarning,
    bootstrap_metric_ci,
    cluster_weights,
    paired_bootstrap_diff,
    weighted_auprc,
    weighted_auroc,
)


def _binary(seed: int, n: int, prevalence: float = 0.3, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    return y, y * shift + rng.normal(size=n)


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
def test_weighted_metrics_equal_sklearn_with_sample_weight(metric: str) -> None:
    y, s = _binary(1, 120)
    s = np.round(s, 1)  # many ties
    w = np.random.default_rng(2).integers(0, 4, size=(6, 120))
    fast = weighted_auroc(y, s, w) if metric == "auroc" else weighted_auprc(y, s, w)
    ref_fn = roc_auc_score if metric == "auroc" else average_precision_score
    ref = [ref_fn(y, s, sample_weight=wi) for wi in w]
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)
    rows = np.repeat(np.arange(120), w[0])  # a weight is a repeated row
    assert fast[0] == pytest.approx(ref_fn(y[rows], s[rows]), abs=1e-12)


def test_weighted_metrics_nan_when_a_class_has_zero_weight() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    w = np.array([[1, 1, 0, 0], [0, 0, 2, 1], [1, 0, 0, 1]])
    auc = weighted_auroc(y, s, w)
    ap = weighted_auprc(y, s, w)
    assert np.isnan(auc[:2]).all() and np.isnan(ap[:2]).all()
    assert auc[2] == 1.0 and ap[2] == 1.0


def test_cluster_weights_keep_patients_intact() -> None:
    groups = np.array(["p1", "p2", "p2", "p3", "p3", "p3", "p4", "p1"])
    w = cluster_weights(groups, 300, seed=5)
    assert w.shape == (300, 8)
    for pid in np.unique(groups):
        rows = np.flatnonzero(groups == pid)
        assert (w[:, rows] == w[:, rows[:1]]).all(), pid
    per_patient = w[:, [0, 1, 3, 6]]  # one row of each patient
    assert (per_patient.sum(axis=1) == 4).all()  # 4 patients drawn per resample
    assert w.max() > 1 and (w == 0).any()


def test_cluster_weights_deterministic_by_seed() -> None:
    groups = np.arange(50) // 2
    np.testing.assert_array_equal(cluster_weights(groups, 100, seed=3), cluster_weights(groups, 100, seed=3))
    assert not np.array_equal(cluster_weights(groups, 100, seed=3), cluster_weights(groups, 100, seed=4))


def test_bootstrap_is_deterministic_with_seed() -> None:
    y, s = _binary(7, 200)
    groups = np.arange(200) // 3
    first = bootstrap_metric_ci(y, s, groups, "auroc", n_resamples=300, seed=11)
    assert bootstrap_metric_ci(y, s, groups, "auroc", n_resamples=300, seed=11) == first
    assert bootstrap_metric_ci(y, s, groups, "auroc", n_resamples=300, seed=12) != first
    assert first.estimate == pytest.approx(roc_auc_score(y, s), abs=1e-15)
    assert first.low < first.estimate < first.high
    assert (first.n_used, first.n_skipped) == (300, 0)


def test_duplicated_patient_rows_resample_as_one_patient() -> None:
    """Each patient has 3 identical rows: the clustered interval equals the row bootstrap of unique rows
    (same draws for the same seed), and is clearly wider than a naive bootstrap of the 240 rows."""
    y, s = _binary(21, 80, prevalence=0.4)
    y3, s3, groups = np.repeat(y, 3), np.repeat(s, 3), np.repeat(np.arange(80), 3)
    clustered = bootstrap_metric_ci(y3, s3, groups, "auroc", n_resamples=500, seed=1)
    unique_rows = bootstrap_metric_ci(y, s, None, "auroc", n_resamples=500, seed=1)
    naive = bootstrap_metric_ci(y3, s3, None, "auroc", n_resamples=500, seed=1)
    np.testing.assert_allclose(clustered, unique_rows, rtol=0, atol=1e-12)
    width_clustered = clustered.high - clustered.low
    width_naive = naive.high - naive.low
    assert width_clustered > 1.4 * width_naive  # about sqrt(3) for triplicated rows


def test_interval_covers_true_auc_at_about_nominal_rate() -> None:
    """Binormal data with true AUC = Phi(shift / sqrt(2)); 200 datasets, 95% percentile intervals.

    Tolerance: 4 binomial SDs below 0.95 (SD = 0.0154), i.e. coverage >= 0.888; coverage 1.0 (intervals
    far too wide) also fails.
    """
    shift = 1.0
    true_auc = norm.cdf(shift / np.sqrt(2))
    hits = 0
    for seed in range(200):
        y, s = _binary(500 + seed, 150, prevalence=0.4, shift=shift)
        ci = bootstrap_metric_ci(y, s, np.arange(150) // 2, "auroc", n_resamples=200, seed=seed)
        hits += ci.low <= true_auc <= ci.high
    coverage = hits / 200
    assert 0.95 - 4 * 0.0154 <= coverage <= 1.0, coverage
    assert coverage < 1.0


def test_callable_metric_uses_the_same_resamples() -> None:
    y, s = _binary(31, 60)
    groups = np.arange(60) // 2
    fast = bootstrap_metric_ci(y, s, groups, "auroc", n_resamples=150, seed=2)
    slow = bootstrap_metric_ci(y, s, groups, roc_auc_score, n_resamples=150, seed=2)
    np.testing.assert_allclose(slow, fast, rtol=0, atol=1e-12)
    ap_fast = bootstrap_metric_ci(y, s, groups, "auprc", n_resamples=150, seed=2)
    ap_slow = bootstrap_metric_ci(y, s, groups, average_precision_score, n_resamples=150, seed=2)
    np.testing.assert_allclose(ap_slow, ap_fast, rtol=0, atol=1e-12)


def test_undefined_resamples_are_skipped_and_counted() -> None:
    y = np.zeros(30, dtype=int)
    y[4] = 1  # one positive patient: about (29/30)^30 = 36% of resamples lack it
    s = np.linspace(0, 1, 30)
    with pytest.warns(DegenerateDataWarning, match="resamples skipped"):
        ci = bootstrap_metric_ci(y, s, None, "auroc", n_resamples=400, seed=0)
    assert ci.n_used + ci.n_skipped == 400
    assert 0.25 * 400 < ci.n_skipped < 0.5 * 400
    assert not np.isnan(ci.low) and not np.isnan(ci.high)


def test_one_class_data_gives_nan_with_warning() -> None:
    with pytest.warns(DegenerateDataWarning, match="no positives"):
        ci = bootstrap_metric_ci(np.zeros(10), np.arange(10.0), None, "auroc", n_resamples=10)
    assert np.isnan(ci).all() and ci.n_skipped == 10


def _multilabel(seed: int, n: int = 400, k: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.25).astype(int)
    a = y * 1.2 + rng.normal(size=(n, k))
    b = y * 0.4 + rng.normal(size=(n, k))
    return y, a, b, np.arange(n) // 2


def test_paired_diff_identical_models() -> None:
    y, a, _, groups = _multilabel(1)
    out = paired_bootstrap_diff(y, a, a, groups, n_resamples=200)
    assert (out["diff"], out["low"], out["high"], out["p"]) == (0.0, 0.0, 0.0, 1.0)


def test_paired_diff_detects_clear_difference() -> None:
    y, a, b, groups = _multilabel(2)
    out = paired_bootstrap_diff(y, a, b, groups, n_resamples=500, seed=3)
    macro = np.mean([roc_auc_score(y[:, c], a[:, c]) - roc_auc_score(y[:, c], b[:, c]) for c in range(3)])
    assert out["diff"] == pytest.approx(macro, abs=1e-12)
    assert 0 < out["low"] < out["diff"] < out["high"]
    assert out["p"] == pytest.approx(2 / 501)  # no resample with d <= 0: the smallest possible p
    assert out["classes"] == [0, 1, 2] and out["n_used"] == 500


def test_paired_diff_p_value_definition() -> None:
    """p = min(1, 2 min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1))) on the same draws."""
    rng = np.random.default_rng(8)
    y, a, _, groups = _multilabel(8, n=200, k=2)
    b = a + rng.normal(scale=0.3, size=a.shape)
    out = paired_bootstrap_diff(y, a, b, groups, n_resamples=300, seed=9)
    w = cluster_weights(groups, 300, seed=9)
    d = np.mean([weighted_auroc(y[:, c], a[:, c], w) - weighted_auroc(y[:, c], b[:, c], w)
                 for c in range(2)], axis=0)
    expected = min(1.0, 2 * min((1 + np.sum(d <= 0)) / 301, (1 + np.sum(d >= 0)) / 301))
    assert 0.02 < expected < 1.0  # a case with resamples on both sides of 0
    assert out["p"] == pytest.approx(expected, abs=1e-15)
    low, high = np.quantile(d, [0.025, 0.975])
    assert (out["low"], out["high"]) == pytest.approx((low, high), abs=1e-15)


def test_paired_diff_leaves_out_one_label_classes() -> None:
    y, a, b, groups = _multilabel(4)
    y[:, 1] = 0
    with pytest.warns(DegenerateDataWarning, match="class column 1"):
        out = paired_bootstrap_diff(y, a, b, groups, n_resamples=100)
    assert out["classes"] == [0, 2]
    expected = np.mean([roc_auc_score(y[:, c], a[:, c]) for c in (0, 2)])
    assert out["auc_a"] == pytest.approx(expected, abs=1e-12)


def test_paired_diff_at_study_size_is_seeded() -> None:
    """1000 resamples x 5 classes x 2000 images, 800 patients (its speed: benchmarks/bootstrap_speed.py)."""
    y, a, b, _ = _multilabel(5, n=2000, k=5)
    groups = np.random.default_rng(0).integers(0, 800, 2000)
    out = paired_bootstrap_diff(y, a, b, groups, n_resamples=1000, seed=0)
    assert out["n_used"] == 1000
    assert out == paired_bootstrap_diff(y, a, b, groups, n_resamples=1000, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": np.arange(5)}, "groups: expected 6 patient ids"),
        ({"groups": np.array(["a", None, "b", "b", "c", "c"], dtype=object)}, "groups: missing patient id at"),
        ({"n_resamples": 0}, "n_resamples: must be a positive integer"),
        ({"alpha": 1.0}, "alpha: must be in"),
        ({"metric": "accuracy"}, "metric: unknown metric 'accuracy'"),
        ({"scores": [0.1, 0.2, np.nan, 0.4, 0.5, 0.6]}, "scores: 1 NaN/inf value"),
    ],
)
def test_bad_inputs_raise(kwargs: dict, match: str) -> None:
    args = {"y_true": [0, 1, 0, 1, 0, 1], "scores": np.arange(6.0), "groups": np.arange(6)} | kwargs
    with pytest.raises(LungpriorError, match=match):
        bootstrap_metric_ci(**args)


def test_paired_diff_shape_mismatch_raises() -> None:
    y, a, b, groups = _multilabel(6)
    with pytest.raises(LungpriorError, match=r"scores_b: shape \(400, 2\) does not match y_true shape"):
        paired_bootstrap_diff(y, a, b[:, :2], groups)


def test_results_do_not_depend_on_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    y, a, b, groups = _multilabel(12, n=300, k=2)
    whole = paired_bootstrap_diff(y, a, b, groups, n_resamples=250, seed=4)
    ci_whole = bootstrap_metric_ci(y[:, 0], a[:, 0], groups, "auprc", n_resamples=250, seed=4)
    monkeypatch.setattr("lungprior.evaluate.bootstrap._CHUNK_CELLS", 300 * 7)  # 7 resamples per block
    assert paired_bootstrap_diff(y, a, b, groups, n_resamples=250, seed=4) == whole
    assert bootstrap_metric_ci(y[:, 0], a[:, 0], groups, "auprc", n_resamples=250, seed=4) == ci_whole


def test_paired_diff_accepts_one_class_vectors() -> None:
    y, a, b, groups = _multilabel(13, k=1)
    one_d = paired_bootstrap_diff(y[:, 0], a[:, 0], b[:, 0], groups, n_resamples=100, seed=1)
    assert one_d == paired_bootstrap_diff(y, a, b, groups, n_resamples=100, seed=1)
    assert one_d["diff"] == pytest.approx(roc_auc_score(y[:, 0], a[:, 0]) - roc_auc_score(y[:, 0], b[:, 0]))


def test_seed_mean_auroc_ci_resamples_patients_once() -> None:
    from sklearn.metrics import roc_auc_score

    from lungprior.evaluate.bootstrap import bootstrap_metric_ci, bootstrap_seed_mean_auroc_ci

    rng = np.random.default_rng(21)
    groups = np.repeat(np.arange(80), 3)
    y = (rng.random(groups.size) < 0.3).astype(int)
    s = y[:, None] * 0.8 + rng.normal(size=(groups.size, 3))
    ci = bootstrap_seed_mean_auroc_ci(y, s, groups, n_resamples=300, seed=4)
    assert ci.estimate == pytest.approx(np.mean([roc_auc_score(y, s[:, k]) for k in range(3)]))
    assert ci.low < ci.estimate < ci.high and ci.n_used == 300
    one = bootstrap_seed_mean_auroc_ci(y, s[:, 0], groups, n_resamples=300, seed=4)
    assert tuple(one) == pytest.approx(tuple(bootstrap_metric_ci(y, s[:, 0], groups, "auroc", 300, seed=4)))
    # three seeds share the same test patients: the pooled interval is not a third as wide as one seed's
    assert (ci.high - ci.low) > 0.6 * (one.high - one.low)
