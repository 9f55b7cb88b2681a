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


def _by_definition(y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Obuchowski's (1997) covariance of the AUROCs of the score columns, written out from the paper's
    definitions with explicit loops: psi over all pairs, V10/V01 summed per cluster, S10, S01, S11."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    big_m, big_n = pos.size, neg.size
    clusters = sorted(set(groups.tolist()))
    i_all = len(clusters)
    i10 = len({groups[j] for j in pos})
    i01 = len({groups[j] for j in neg})
    k = scores.shape[1]

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else 0.5 if x == z else 0.0

    theta = np.array([np.mean([psi(scores[i, r], scores[j, r]) for i in pos for j in neg]) for r in range(k)])
    a = np.zeros((i_all, k))  # V10_i - m_i theta
    b = np.zeros((i_all, k))  # V01_i - n_i theta
    for c, g in enumerate(clusters):
        for r in range(k):
            for i in pos[groups[pos] == g]:
                a[c, r] += np.mean([psi(scores[i, r], scores[j, r]) for j in neg]) - theta[r]
            for j in neg[groups[neg] == g]:
                b[c, r] += np.mean([psi(scores[i, r], scores[j, r]) for i in pos]) - theta[r]
    s10 = i10 / ((i10 - 1) * big_m) * (a.T @ a)
    s01 = i01 / ((i01 - 1) * big_n) * (b.T @ b)
    s11 = i_all / (i_all - 1) * (a.T @ b)
    return s10 / big_m + s01 / big_n + (s11 + s11.T) / (big_m * big_n)


def test_hand_computed_example() -> None:
    """Three patients: P1 (positive 0.9, negative 0.3), P2 (positive 0.4), P3 (negatives 0.5 and 0.1).

    theta = 5/6; V10 - m theta per patient: 1/6, -1/6, 0; V01 - n theta: 1/6, 0, -1/6; I10 = I01 = 2, I = 3.
    S10 = 2/(1*2) * 2/36 = 1/18, S01 = 2/(1*3) * 2/36 = 1/27, S11 = 3/2 * 1/36 = 1/24;
    var = S10/2 + S01/3 + 2 S11/6 = 1/36 + 1/81 + 1/72 = 35/648.
    """
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.3, 0.4, 0.5, 0.1])
    groups = np.array(["P1", "P1", "P2", "P3", "P3"])
    aucs, cov = obuchowski_auc_cov(y, s, groups)
    assert aucs[0] == pytest.approx(5 / 6, abs=1e-15)
    assert cov[0, 0] == pytest.approx(35 / 648, rel=1e-12)
    assert cov[0, 0] == pytest.approx(_by_definition(y, s[:, None], groups)[0, 0], rel=1e-12)
    # I / (I - 1) on all three terms (the formula before) would give 57/1296: smaller
    assert not np.isclose(cov[0, 0], 57 / 1296)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_model_covariance_matches_the_definitions(seed: int) -> None:
    """Unequal clusters, some patients with only positive or only negative films, tied scores."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(9), rng.integers(1, 5, size=9))
    y = (rng.random(groups.size) < 0.4).astype(int)
    y[:2] = (1, 0)
    scores = np.round(np.column_stack([y + rng.normal(size=y.size), 0.5 * y + rng.normal(size=y.size)]), 1)
    _, cov = obuchowski_auc_cov(y, scores, groups)
    ref = _by_definition(y, scores, groups)
    assert cov == pytest.approx(ref, rel=1e-12, abs=1e-15)
    t = obuchowski_test(y, scores[:, 0], scores[:, 1], groups)
    assert t.se**2 == pytest.approx(ref[0, 0] + ref[1, 1] - 2 * ref[0, 1], rel=1e-12)
    pooled = pooled_obuchowski_test(y, scores[:, :1], scores[:, 1:], groups)
    assert pooled.se == pytest.approx(t.se, rel=1e-12)


def test_one_film_per_patient_equals_delong_exactly() -> None:
    """Each patient one film: I10 = M, I01 = N, S11 = 0, so Obuchowski's covariance is DeLong's."""
    y, a, b = _independent()
    scores = np.column_stack([a, b])
    aucs, cov = obuchowski_auc_cov(y, scores, np.arange(y.size))
    ref_aucs, dl = delong_auc_cov(y, scores)
    assert aucs == pytest.approx(ref_aucs, abs=1e-15)
    assert cov == pytest.approx(dl, rel=1e-12, abs=1e-18)
    test, ref = obuchowski_test(y, a, b, np.arange(y.size)), delong_test(y, a, b)
    assert test.diff == ref.diff
    assert (test.se, test.z, test.p) == pytest.approx((ref.se, ref.z, ref.p), rel=1e-12)


def test_one_patient_with_the_finding_gives_no_variance() -> None:
    """All positives in one patient: I10 = 1 and I10 / (I10 - 1) is undefined, so no p (not p = 0)."""
    y, a, b = _independent(seed=2, n=60)
    y = np.zeros_like(y)
    y[:3] = 1
    groups = np.r_[[0, 0, 0], np.arange(1, 58)]
    with pytest.warns(DegenerateDataWarning, match="at least 2 patients with"):
        t = obuchowski_test(y, a, b, groups)
    assert np.isnan(t.p) and np.isnan(t.ci_low) and not np.isnan(t.diff)


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
