"""Obuchowski's clustered AUROC variance: DeLong with one film per patient, the patient bootstrap with several."""

from __future__ import annotations

import numpy as np
import pytest

from lungprior.evaluate.bootstrap import cluster_weights, weighted_auroc
from lungprior.evaluate.clustered import (
    delong_paired,
    obuchowski_auc_cov,
    obuchowski_test,
    pooled_macro_test,
    pooled_obuchowski_test,
)
from lungprior.evaluate.simulation import simulate
from lungprior.evaluate.stats import DegenerateDataWarning, delong_auc_cov, delong_test


def _independent(seed: int = 0, n: int = 180) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    return y, np.round(y + rng.normal(size=n), 1), 0.6 * y + rng.normal(size=n)  # rounding: ties


def test_one_film_per_patient_reduces_to_delong() -> None:
    """Each cluster one film: S11 = 0 and Obuchowski's S10, S01 are DeLong's up to I/(I-1) vs M/(M-1), N/(N-1)."""
    y, a, b = _independent()
    scores = np.column_stack([a, b])
    aucs, cov = obuchowski_auc_cov(y, scores, np.arange(y.size))
    ref_aucs, _ = delong_auc_cov(y, scores)
    assert aucs == pytest.approx(ref_aucs, abs=1e-15)
    # DeLong's variance split into its positive and negative parts (each film a patient)
    m, n, i = int(y.sum()), int((1 - y).sum()), y.size
    _, dl = delong_auc_cov(y, scores)
    from lungprior.evaluate.delong import _placements

    v10, v01 = _placements(y.astype(np.int8), scores)
    s10 = np.cov(v10, rowvar=False) / m
    s01 = np.cov(v01, rowvar=False) / n
    assert dl == pytest.approx(s10 + s01, rel=1e-12)  # DeLong as implemented (and checked against pROC)
    expected = i / (i - 1) * (s10 * (m - 1) / m + s01 * (n - 1) / n)
    assert cov == pytest.approx(expected, rel=1e-12)
    assert np.diag(cov) == pytest.approx(np.diag(dl), rel=0.01)  # the finite-sample factors differ by < 1 %
    test, ref = obuchowski_test(y, a, b, np.arange(y.size)), delong_test(y, a, b)
    assert test.diff == ref.diff and test.p == pytest.approx(ref.p, rel=0.02)


def test_clustered_variance_matches_the_patient_bootstrap() -> None:
    """On clustered data the paired variance agrees with the patient bootstrap's, which DeLong's does not."""
    rng = np.random.default_rng(3)
    y, a, b, groups = simulate(rng, 80, 5, patient_sd=1.5)
    t = obuchowski_test(y, a, b, groups)
    w = cluster_weights(groups, 4000, seed=1)
    boot = weighted_auroc(y, a, w) - weighted_auroc(y, b, w)
    boot_var = boot.var(ddof=1)
    # Monte-Carlo SE of a variance from B = 4000 draws is about var * sqrt(2 / B) = 2.2 %; the bootstrap's own
    # 1 - 1/I bias is 1.3 %; allow 10 %
    assert t.se**2 == pytest.approx(boot_var, rel=0.10)
    assert delong_test(y, a, b).se ** 2 < 0.6 * boot_var  # films as independent: far too small here


def test_interval_and_degenerate_cases() -> None:
    y, a, b = _independent(seed=4)
    groups = np.arange(y.size) // 3
    t = obuchowski_test(y, a, b, groups, alpha=0.1)
    half = 1.6448536 * t.se
    assert (t.ci_low, t.ci_high) == pytest.approx((t.diff - half, t.diff + half))
    same = obuchowski_test(y, a, a, groups)
    assert (same.diff, same.z, same.p) == (0.0, 0.0, 1.0)
    with pytest.warns(DegenerateDataWarning):
        empty = obuchowski_test(np.zeros(10, int), a[:10], b[:10], groups[:10])
    assert np.isnan(empty.p)
    with pytest.warns(DegenerateDataWarning, match="at least 2 patients"):
        one = obuchowski_test(y, a, b, np.zeros(y.size))
    assert np.isnan(one.p) and one.diff == pytest.approx(delong_test(y, a, b).diff)
    d = delong_paired(y, a, b)
    assert d.p == pytest.approx(delong_test(y, a, b).p)


def test_pooled_over_seeds() -> None:
    """One seed: the pooled test is the per-seed test; identical seeds: the same as one."""
    rng = np.random.default_rng(5)
    y, a, b, groups = simulate(rng, 60, 4)
    one = obuchowski_test(y, a, b, groups)
    pooled = pooled_obuchowski_test(y, a[:, None], b[:, None], groups)
    assert pooled.diff == pytest.approx(one.diff) and pooled.se == pytest.approx(one.se)
    twice = pooled_obuchowski_test(y, np.column_stack([a, a]), np.column_stack([b, b]), groups)
    assert twice.se == pytest.approx(one.se)
    _, a2, b2, _ = simulate(np.random.default_rng(6), 60, 4)
    mixed = pooled_obuchowski_test(y, np.column_stack([a, a2]), np.column_stack([b, b2]), groups)
    diffs = [obuchowski_test(y, a, b, groups).diff, obuchowski_test(y, a2, b2, groups).diff]
    assert mixed.diff == pytest.approx(np.mean(diffs))


def test_pooled_macro_is_the_mean_over_classes_and_seeds() -> None:
    rng = np.random.default_rng(8)
    y1, a1, b1, groups = simulate(rng, 50, 3)
    y2 = (rng.random(y1.size) < 0.4).astype(int)
    a2, b2 = y2 + rng.normal(size=(y1.size, 2)).T, 0.5 * y2 + rng.normal(size=(y1.size, 2)).T
    a2, b2 = a2.T, b2.T
    t = pooled_macro_test([y1, y2], [np.column_stack([a1, a1]), a2], [np.column_stack([b1, b1]), b2], groups)
    per = [obuchowski_test(y1, a1, b1, groups).diff, obuchowski_test(y2, a2[:, 0], b2[:, 0], groups).diff,
           obuchowski_test(y2, a2[:, 1], b2[:, 1], groups).diff]
    assert t.diff == pytest.approx((per[0] + (per[1] + per[2]) / 2) / 2)
    # Monte-Carlo check of the variance: the patient bootstrap of the same statistic
    w = cluster_weights(groups, 3000, seed=2)

    def stat(w: np.ndarray) -> np.ndarray:
        c1 = weighted_auroc(y1, a1, w) - weighted_auroc(y1, b1, w)
        c2 = np.mean([weighted_auroc(y2, a2[:, s], w) - weighted_auroc(y2, b2[:, s], w) for s in (0, 1)], axis=0)
        return (c1 + c2) / 2

    assert t.se**2 == pytest.approx(stat(w).var(ddof=1), rel=0.12)
