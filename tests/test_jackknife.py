"""The patient jackknife: exact leave-one-patient-out AUROCs, its variance, the t reference and the macro test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t
from sklearn.metrics import roc_auc_score

from lungprior.evaluate.jackknife import (
    jackknife_macro_test,
    jackknife_test,
    jackknife_variance,
    leave_one_out_aucs,
)
from lungprior.evaluate.scores import DegenerateDataWarning
from lungprior.evaluate.simulation import DESIGNS, simulate, simulate_study


def test_leave_one_out_aucs_equal_sklearn_without_the_patient() -> None:
    rng = np.random.default_rng(0)
    y, a, b, groups = simulate(rng, 25, 4)
    a = np.round(a, 1)  # ties, also within a patient
    loo = leave_one_out_aucs(y, np.column_stack([a, b]), groups)
    for i in range(25):
        keep = groups != i
        assert loo[i, 0] == pytest.approx(roc_auc_score(y[keep], a[keep]), abs=1e-12)
        assert loo[i, 1] == pytest.approx(roc_auc_score(y[keep], b[keep]), abs=1e-12)


def test_jackknife_test_uses_the_jackknife_se_and_a_t_reference() -> None:
    rng = np.random.default_rng(1)
    y, a, b, groups = simulate(rng, 30, 5, effect=0.5)
    t = jackknife_test(y, a, b, groups)
    loo = leave_one_out_aucs(y, np.column_stack([a, b]), groups)
    d = loo[:, 0] - loo[:, 1]
    assert t.se**2 == pytest.approx(29 / 30 * np.sum((d - d.mean()) ** 2))
    assert t.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    df = min(len(set(groups[y == 1])), len(set(groups[y == 0]))) - 1
    assert t.p == pytest.approx(2 * student_t.sf(abs(t.diff / t.se), df))
    half = student_t.ppf(0.975, df) * t.se
    assert (t.ci_low, t.ci_high) == pytest.approx((t.diff - half, t.diff + half))
    same = jackknife_test(y, a, a, groups)
    assert (same.diff, same.p) == (0.0, 1.0)


def test_too_few_patients_on_a_side_gives_no_p() -> None:
    y = np.array([1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.4])
    with pytest.warns(DegenerateDataWarning, match="at least 2 patients"):
        t = jackknife_test(y, s, s[::-1], np.array([0, 0, 1, 2, 3, 4]))
    assert np.isnan(t.p) and np.isnan(t.ci_low) and np.isfinite(t.diff)
    assert np.isnan(jackknife_variance(np.array([0.1])))


def test_macro_test_is_the_mean_over_classes() -> None:
    rng = np.random.default_rng(2)
    y, a, b, groups = simulate_study(rng, DESIGNS[1], effect=0.5)
    t = jackknife_macro_test(y, a, b, groups)
    diffs = [roc_auc_score(y[:, j], a[:, j]) - roc_auc_score(y[:, j], b[:, j]) for j in range(y.shape[1])]
    assert t.diff == pytest.approx(np.mean(diffs))
    one = jackknife_macro_test(y[:, :1], a[:, :1], b[:, :1], groups)
    ref = jackknife_test(y[:, 0], a[:, 0], b[:, 0], groups)
    assert (one.diff, one.se, one.p) == pytest.approx((ref.diff, ref.se, ref.p))
