"""AUROC/AUPRC wrappers, the derived No Finding score, Youden threshold and sensitivity/specificity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import lungprior.stats
from lungprior.errors import LungpriorError
from lungprior.evaluate.stats import (
    DegenerateDataWarning,
    auprc,
    auroc,
    no_finding_score,
    sens_spec,
    youden_threshold,
)

PROBS = np.array([[0.1, 0.2, 0.0, 0.5, 0.3], [0.0, 0.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.1, 0.1, 0.1]])


def test_no_finding_max() -> None:
    np.testing.assert_allclose(no_finding_score(PROBS, "max"), [0.5, 1.0, 0.1], atol=1e-15)
    np.testing.assert_allclose(no_finding_score(PROBS), [0.5, 1.0, 0.1], atol=1e-15)


def test_no_finding_prod() -> None:
    expected = [0.9 * 0.8 * 1.0 * 0.5 * 0.7, 1.0, 0.1 * 0.9**4]
    np.testing.assert_allclose(no_finding_score(PROBS, "prod"), expected, atol=1e-15)


def test_prod_never_exceeds_max_score() -> None:
    p = np.random.default_rng(0).random((200, 5))
    assert np.all(no_finding_score(p, "prod") <= no_finding_score(p, "max") + 1e-15)


@pytest.mark.parametrize(
    ("probs", "method", "match"),
    [
        (np.zeros((4, 6)), "max", r"probs: expected shape \(n, 5\)"),
        (np.zeros(5), "max", r"probs: expected shape \(n, 5\)"),
        (np.array([[0.1, 0.2, 1.5, 0.0, 0.0]]), "max", r"probs: value 1\.5 at \(0, 2\)"),
        (np.array([[0.1, np.nan, 0.5, 0.0, 0.0]]), "prod", r"probs: value nan at \(0, 1\)"),
        (PROBS, "mean", "method: unknown No Finding method 'mean'"),
    ],
)
def test_no_finding_bad_input(probs: np.ndarray, method: str, match: str) -> None:
    with pytest.raises(LungpriorError, match=match):
        no_finding_score(probs, method)  # type: ignore[arg-type]


def test_auroc_auprc_equal_sklearn() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.round(y * 0.9 + rng.normal(size=300), 1)
    assert auroc(y, s) == roc_auc_score(y, s)
    assert auprc(y, s) == average_precision_score(y, s)
    assert auroc(y.astype(bool), s) == roc_auc_score(y, s)


@pytest.mark.parametrize("fn", [auroc, auprc, youden_threshold])
def test_one_class_gives_nan_with_warning(fn: Callable[..., float]) -> None:
    with pytest.warns(DegenerateDataWarning, match="no positives among 4 samples"):
        assert np.isnan(fn([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4]))


def test_youden_picks_best_j_and_highest_on_ties() -> None:
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.4, 0.7, 0.8]
    # t = 0.7: sens 2/3, spec 1 (J = 2/3); t = 0.4: sens 1, spec 2/3 (J = 2/3); others lower
    assert youden_threshold(y, s) == 0.7


def test_youden_maximises_j_over_observed_scores() -> None:
    rng = np.random.default_rng(9)
    y = (rng.random(400) < 0.3).astype(int)
    s = np.round(y * 1.1 + rng.normal(size=400), 2)
    t = youden_threshold(y, s)
    assert t in s
    j = {c: sum(sens_spec(y, s, c)) - 1 for c in np.unique(s)}
    assert sum(sens_spec(y, s, t)) - 1 == pytest.approx(max(j.values()), abs=1e-12)
    assert t == max(c for c, v in j.items() if v >= max(j.values()) - 1e-12)


def test_sens_spec_counts_ties_as_positive() -> None:
    y = [0, 0, 1, 1, 1]
    s = [0.2, 0.5, 0.5, 0.4, 0.9]
    assert sens_spec(y, s, 0.5) == (2 / 3, 0.5)
    assert sens_spec(y, s, 1.0) == (0.0, 1.0)
    assert sens_spec(y, s, 0.0) == (1.0, 0.0)


def test_sens_spec_undefined_side_is_nan() -> None:
    with pytest.warns(DegenerateDataWarning, match="sensitivity is undefined"):
        sens, spec = sens_spec([0, 0, 0], [0.1, 0.6, 0.7], 0.5)
    assert np.isnan(sens) and spec == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1], [0.1, 0.2, 0.3], "scores: length 3 does not match y_true length 2"),
        ([0, 1, 1], [0.1, np.inf, 0.3], "scores: 1 NaN/inf value"),
        ([0.0, 0.5, 1.0], [0.1, 0.2, 0.3], "y_true: labels must be 0 or 1, got 0.5 at index 1"),
        ([[0, 1]], [0.1], r"y_true: expected a 1-D array"),
        (["a", "b"], [0.1, 0.2], "y_true: labels must be 0/1 numbers"),
    ],
)
def test_bad_inputs(y: list, s: list, match: str) -> None:
    with pytest.raises(LungpriorError, match=match):
        auroc(y, s)


def test_sens_spec_rejects_nan_threshold() -> None:
    with pytest.raises(LungpriorError, match="threshold"):
        sens_spec([0, 1], [0.1, 0.9], float("nan"))


def test_top_level_module_reexports() -> None:
    assert lungprior.stats.delong_test.__module__ == "lungprior.evaluate.delong"
    assert lungprior.stats.no_finding_score is no_finding_score
    assert {"delong_test", "delong_ci", "bootstrap_metric_ci", "paired_bootstrap_diff", "holm_adjust",
            "no_finding_score", "youden_threshold", "sens_spec"} <= set(lungprior.stats.__all__)
