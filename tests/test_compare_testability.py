"""compare: a finding carried by one patient gets no p and no CI and says why; bounds stay bounds; the console
table fits 80 columns and names the direction of the difference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_evaluate_metrics import _predictions
from typer.testing import CliRunner

from lungprior.evaluate import testability as tb
from lungprior.evaluate.compare import compare_predictions
from lungprior.evaluate.delong import holm_adjust, holm_adjust_bounds
from lungprior.evaluate.testability import COUNT_COLUMNS, format_p
from lungprior.labels import FINDINGS, NO_FINDING


def _pair(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs' predictions on the same films (two per patient); Nodule is positive only on patient P0's
    two films; run B is run A with noise added."""
    a = _predictions(n=n, seed=seed, signal=2.0, drop="Nodule")
    a.loc[:1, "Nodule"], a.loc[:1, NO_FINDING] = 1, 0
    b = a.copy()
    rng = np.random.default_rng(seed + 1)
    for k in FINDINGS:
        b[f"p_{k}"] = np.clip(a[f"p_{k}"] + rng.normal(0, 0.3, n), 0, 1)
    return a, b


def test_a_finding_in_one_patient_gets_no_p_and_says_why() -> None:
    a, b = _pair()
    table = compare_predictions(a, b, names=("tight", "original")).set_index("target")
    row = table.loc["Nodule"]
    assert not row["testable"] and (row["n_pos"], row["n_pos_patients"]) == (2, 1)
    assert np.isnan(row["p"]) and np.isnan(row["p_holm"]) and np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
    assert np.isnan(row["z"]) and np.isfinite(row["diff"])  # the AUCs and their difference stay
    assert row["note"].startswith("not testable: 2 films with the finding from 1 patient")
    tested = table.drop(index=["Nodule", "macro AUROC"])
    assert tested["testable"].all() and tested["p"].notna().all() and (tested["note"] == "").all()
    # Holm's family holds the five testable rows only
    assert tested["p_holm"].to_numpy() == pytest.approx(holm_adjust(tested["p"].to_numpy()))
    macro = table.loc["macro AUROC"]
    assert macro["testable"] and "Nodule not testable" in macro["note"] and np.isfinite(macro["p"])
    assert list(table.columns[-len(COUNT_COLUMNS) - 2:]) == [*COUNT_COLUMNS, "p_bound", "p_holm_bound"]


def test_testability_counts_patients_on_both_sides() -> None:
    y = np.array([1, 1, 0, 0, 0, 1])
    groups = np.array(["p", "p", "p", "q", "r", "s"])
    t = tb.testability(y, groups)
    assert (t.n_pos, t.n_pos_patients, t.n_neg, t.n_neg_patients) == (3, 2, 3, 3) and t.testable
    t = tb.testability(y, groups, min_pos_patients=3)
    assert not t.testable and t.note.startswith("not testable: 3 films with the finding from 2 patients")


def test_holm_keeps_bounds_as_bounds() -> None:
    p = np.array([0.002, 0.04, np.nan, 0.3])
    adjusted, bound = holm_adjust_bounds(p, [True, False, False, False])
    assert adjusted == pytest.approx(holm_adjust(p), nan_ok=True)
    assert bound.tolist() == [True, False, False, False]  # 3 * 0.002 comes from the bound only
    # the running maximum attained by an exact term: no longer a bound
    adjusted, bound = holm_adjust_bounds(np.array([0.002, 0.003]), [True, False])
    assert adjusted == pytest.approx([0.004, 0.004]) and bound.tolist() == [True, True]
    adjusted, bound = holm_adjust_bounds(np.array([0.02, 0.004]), [False, True])
    assert adjusted == pytest.approx([0.02, 0.008]) and bound.tolist() == [False, True]
    adjusted, bound = holm_adjust_bounds(np.array([0.004, 0.003]), [True, False])
    assert adjusted == pytest.approx([0.006, 0.006]) and bound.tolist() == [False, False]


def test_format_p_prints_bounds() -> None:
    assert format_p(2 / 1001, bound=True) == "p ≤ 0.002"
    assert format_p(0.0312) == "p = 0.031"
    assert format_p(float("nan")) == "p n/a"


def _runs(tmp_path, a: pd.DataFrame, b: pd.DataFrame):
    dirs = []
    for name, df in (("tight", a), ("original", b)):
        d = tmp_path / name
        d.mkdir()
        df.to_csv(d / "predictions.csv", index=False)
        dirs.append(d)
    return dirs


def test_compare_console_names_the_direction_and_fits_80_columns(tmp_path) -> None:
    from lungprior.cli.main import app

    run_a, run_b = _runs(tmp_path, *_pair())
    result = CliRunner().invoke(app, ["compare", str(run_a), str(run_b), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "diff = A − B (tight minus original)" in out
    assert "Nodule: not testable: 2 films with the finding from 1 patient" in out
    assert "test (Mass, Nodule" in out and "patient jackknife" in out
    assert "Warning" not in out and "warnings.warn" not in out
    written = pd.read_csv(tmp_path / "cmp.csv")
    assert not written.set_index("target").loc["Nodule", "testable"]
    boot = CliRunner().invoke(app, ["compare", str(run_a), str(run_b), "--test", "bootstrap", "--bootstrap", "50"])
    assert boot.exit_code == 0, boot.output
    assert "≤ 0.039" in boot.output and "bootstrap p at its floor" in boot.output  # 2 / 51, a bound


def test_an_interval_never_leaves_the_range_of_an_auroc_difference() -> None:
    from lungprior.evaluate.clustered import _finish

    wide = _finish(0.9, 0.2, var=0.25, alpha=0.05, df=1)  # t with one degree of freedom: half-width 6.4
    assert (wide.ci_low, wide.ci_high) == (-1.0, 1.0) and wide.diff == pytest.approx(0.7)
    narrow = _finish(0.6, 0.5, var=1e-4, alpha=0.05)
    assert narrow.ci_low == pytest.approx(0.1 - 1.959964 * 0.01)
    assert narrow.ci_high == pytest.approx(0.1 + 1.959964 * 0.01)
