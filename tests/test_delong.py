"""DeLong test and interval: against R's pROC, an explicit structural-components variance, and a null."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lungprior.errors import LungpriorError
from lungprior.evaluate.stats import (
    DegenerateDataWarning,
    delong_auc_cov,
    delong_ci,
    delong_test,
    holm_adjust,
)

R_SCRIPT = r"""
suppressMessages(library(pROC))
for (f in commandArgs(trailingOnly = TRUE)) {
  d <- read.csv(f)
  r1 <- roc(d$y, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
  r2 <- roc(d$y, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
  t <- suppressWarnings(roc.test(r1, r2, paired = TRUE, method = "delong"))
  v <- c(t$statistic, t$p.value, t$estimate, ci.auc(r1, method = "delong"), ci.auc(r2, method = "delong"))
  cat(basename(f), sprintf("%.17g", v), "\n")
}
"""


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Seeded (y, a, b) cases: continuous, heavy ties, small n, unbalanced, near-identical, extremes."""
    out = {}
    rng = np.random.default_rng(11)
    y = (rng.random(150) < 0.35).astype(int)
    out["continuous"] = (y, y * 1.0 + rng.normal(size=150), y * 0.6 + rng.normal(size=150))
    rng = np.random.default_rng(12)
    y = (rng.random(300) < 0.4).astype(int)
    out["ties_rounded"] = (y, np.round(y * 0.7 + rng.normal(size=300), 1),
                           np.round(y * 0.5 + rng.normal(size=300)))
    rng = np.random.default_rng(13)
    y = (rng.random(200) < 0.5).astype(int)
    out["ties_ordinal"] = (y, np.clip(np.round(2 + y + rng.normal(size=200)), 1, 5),
                           (y + (rng.random(200) < 0.3)) % 2)
    rng = np.random.default_rng(14)
    y = np.array([0, 1] * 5 + [0, 0])
    out["small_n"] = (y, y * 0.8 + rng.normal(size=12), rng.normal(size=12))
    rng = np.random.default_rng(15)
    y = np.zeros(400, dtype=int)
    y[rng.choice(400, size=8, replace=False)] = 1
    out["unbalanced"] = (y, y * 1.5 + rng.normal(size=400), y * 1.0 + rng.normal(size=400))
    rng = np.random.default_rng(16)
    y = (rng.random(250) < 0.3).astype(int)
    a = y * 0.8 + rng.normal(size=250)
    out["nearly_identical"] = (y, a, a + rng.normal(scale=1e-3, size=250))
    out["identical"] = (y, a, a.copy())
    rng = np.random.default_rng(17)
    y = (rng.random(60) < 0.5).astype(int)
    out["perfect_a"] = (y, y + rng.random(60) * 0.5, y * 0.3 + rng.normal(size=60))
    return out


DATASETS = _datasets()


@pytest.fixture(scope="module")
def proc_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """pROC's (z, p, auc_a, auc_b, ci_a[low, auc, high], ci_b[low, auc, high]) per dataset, one R call."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not found: install R's pROC (apt-get install r-cran-proc) for reference tests")
    probe = subprocess.run(["Rscript", "-e", 'quit(status = !requireNamespace("pROC", quietly = TRUE))'],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip("R package pROC not installed (apt-get install r-cran-proc)")
    folder: Path = tmp_path_factory.mktemp("proc")
    files = []
    for name, (y, a, b) in DATASETS.items():
        path = folder / f"{name}.csv"
        np.savetxt(path, np.column_stack([y, a, b]), delimiter=",", header="y,a,b", comments="", fmt="%.17g")
        files.append(str(path))
    run = subprocess.run(["Rscript", "-e", R_SCRIPT, *files], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    results = {}
    for line in run.stdout.splitlines():
        fields = line.split()
        results[fields[0].removesuffix(".csv")] = np.array([float(v) for v in fields[1:]])
    assert set(results) == set(DATASETS)
    return results


@pytest.mark.parametrize("name", list(DATASETS))
def test_delong_test_matches_proc(name: str, proc_results: dict[str, np.ndarray]) -> None:
    y, a, b = DATASETS[name]
    ref = proc_results[name]
    res = delong_test(y, a, b)
    np.testing.assert_allclose([res.z, res.p, res.auc_a, res.auc_b], ref[:4], rtol=0, atol=1e-6)
    assert res.diff == pytest.approx(ref[2] - ref[3], abs=1e-12)


@pytest.mark.parametrize("name", list(DATASETS))
def test_delong_ci_matches_proc(name: str, proc_results: dict[str, np.ndarray]) -> None:
    y, a, b = DATASETS[name]
    ref = proc_results[name]
    for scores, (low, mid, high) in ((a, ref[4:7]), (b, ref[7:10])):
        auc, lo, hi = delong_ci(y, scores)
        np.testing.assert_allclose([auc, lo, hi], [mid, low, high], rtol=0, atol=1e-6)


def test_reference_cases_are_not_trivial() -> None:
    """The pROC cases really contain ties, small samples and near-identical scores."""
    y, a, b = DATASETS["ties_rounded"]
    assert np.unique(a).size < a.size / 3
    assert DATASETS["small_n"][0].sum() == 5
    assert DATASETS["unbalanced"][0].sum() == 8
    y, a, b = DATASETS["nearly_identical"]
    assert 0 < abs(delong_test(y, a, b).diff) < 0.01


def _explicit_cov(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """DeLong covariance from the full psi matrix of every positive-negative pair, O(m n)."""
    pos, neg = scores[y == 1], scores[y == 0]
    psi = (pos[:, None, :] > neg[None, :, :]) + 0.5 * (pos[:, None, :] == neg[None, :, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return np.cov(v10, rowvar=False) / len(pos) + np.cov(v01, rowvar=False) / len(neg)


@pytest.mark.parametrize("name", ["continuous", "ties_rounded", "ties_ordinal", "small_n", "unbalanced"])
def test_auc_and_covariance_match_explicit_computation(name: str) -> None:
    y, a, b = DATASETS[name]
    scores = np.column_stack([a, b])
    aucs, cov = delong_auc_cov(y, scores)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, a), roc_auc_score(y, b)], rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, _explicit_cov(y, scores), rtol=1e-10, atol=1e-14)
    res = delong_test(y, a, b)
    assert res.se == pytest.approx(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), rel=1e-12)


def test_null_p_values_are_roughly_uniform() -> None:
    """400 seeded datasets, two independent noise scores: share of p < 0.05 within 4 binomial SDs."""
    n_sets = 400
    pvals = np.empty(n_sets)
    for seed in range(n_sets):
        rng = np.random.default_rng(1000 + seed)
        y = (rng.random(100) < 0.4).astype(int)
        pvals[seed] = delong_test(y, rng.normal(size=100), rng.normal(size=100)).p
    for level in (0.05, 0.5):
        tol = 4 * np.sqrt(level * (1 - level) / n_sets)
        assert abs(np.mean(pvals < level) - level) <= tol, (level, np.mean(pvals < level))


def test_swapping_models_negates_difference() -> None:
    y, a, b = DATASETS["continuous"]
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert ab.diff == pytest.approx(-ba.diff, abs=1e-15)
    assert ab.z == pytest.approx(-ba.z, abs=1e-12)
    assert ab.p == pytest.approx(ba.p, abs=1e-12)
    assert ab.diff > 0


def test_identical_scores_give_z_zero_p_one() -> None:
    y, a, _ = DATASETS["continuous"]
    res = delong_test(y, a, a)
    assert (res.diff, res.z, res.p, res.se) == (0.0, 0.0, 1.0, 0.0)


def test_no_positives_gives_nan_with_warning() -> None:
    y = np.zeros(20, dtype=int)
    scores = np.linspace(0, 1, 20)
    with pytest.warns(DegenerateDataWarning, match="no positives"):
        res = delong_test(y, scores, scores[::-1])
    assert all(np.isnan([res.auc_a, res.auc_b, res.diff, res.z, res.p, res.se]))
    with pytest.warns(DegenerateDataWarning, match="no negatives"):
        ci = delong_ci(np.ones(5), np.arange(5.0))
    assert all(np.isnan(ci))


def test_single_positive_has_auc_but_no_variance() -> None:
    y = np.array([0, 0, 0, 1])
    with pytest.warns(DegenerateDataWarning, match="1 positive"):
        auc, low, high = delong_ci(y, [0.1, 0.2, 0.9, 0.5])
    assert auc == pytest.approx(2 / 3)
    assert np.isnan(low) and np.isnan(high)


@pytest.mark.parametrize(
    ("y", "a", "b", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3], "scores_a: length 2 does not match y_true length 3"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [0.1, np.nan, 0.3], "scores_b: 1 NaN/inf value"),
        ([0, 2, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "y_true: labels must be 0 or 1, got 2 at index 1"),
        ([0, 1, 1], ["x", "y", "z"], [0.1, 0.2, 0.3], "scores_a: scores must be numbers"),
    ],
)
def test_bad_inputs_raise_one_line_error(y: list, a: list, b: list, match: str) -> None:
    with pytest.raises(LungpriorError, match=match) as info:
        delong_test(y, a, b)
    assert "\n" not in str(info.value)


def test_delong_ci_rejects_bad_alpha() -> None:
    with pytest.raises(LungpriorError, match="alpha"):
        delong_ci([0, 1], [0.1, 0.2], alpha=1.5)


def test_holm_textbook_example() -> None:
    # m = 4: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06 (monotone)
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], atol=1e-15)


def test_holm_caps_at_one_and_passes_nan() -> None:
    np.testing.assert_allclose(holm_adjust([0.5, 0.6, 0.01]), [1.0, 1.0, 0.03], atol=1e-15)
    out = holm_adjust([0.01, np.nan, 0.04])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04], atol=1e-15)
    assert np.isnan(holm_adjust([np.nan])).all()
    assert holm_adjust([]).shape == (0,)


def test_holm_is_monotone_in_the_raw_order() -> None:
    p = np.random.default_rng(3).random(30) ** 3
    adj = holm_adjust(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1)


def test_holm_rejects_non_probabilities() -> None:
    with pytest.raises(LungpriorError, match=r"pvalues: value 1\.2 at index 1"):
        holm_adjust([0.1, 1.2])
