"""Platt calibration per class (fitted on val), its JSON contract, Brier score and ECE."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import (
    apply_calibration,
    brier,
    calibration_metrics,
    ece,
    fit_calibration,
    fit_platt,
    logit,
    sigmoid,
)
from lungprior.labels import FINDINGS, NO_FINDING


def _inflated(n: int, seed: int) -> pd.DataFrame:
    """True probabilities sigmoid(x); the model reports odds inflated by a class-specific factor (like
    class-weighted BCE), i.e. logit(p) = x + log(w_k)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)]})
    for j, k in enumerate(FINDINGS):
        x = rng.normal(-1.5, 1.5, n)
        df[k] = (rng.random(n) < sigmoid(x)).astype(int)
        df[f"p_{k}"] = sigmoid(x + np.log(2.0 + 3 * j))
    df[NO_FINDING] = (df[list(FINDINGS)].sum(axis=1) == 0).astype(int)
    return df


def test_platt_recovers_the_inflation_and_improves_calibration() -> None:
    val, test = _inflated(4000, 0), _inflated(4000, 1)
    calib = fit_calibration(val)
    assert calib["method"] == "platt" and calib["fitted_on"] == "val"
    for j, k in enumerate(FINDINGS):
        assert calib["params"][k]["a"] == pytest.approx(1.0, abs=0.1)
        assert calib["params"][k]["b"] == pytest.approx(-np.log(2.0 + 3 * j), abs=0.15)
    json.dumps(calib)  # the contract is plain JSON
    raw, cal = calibration_metrics(test), calibration_metrics(apply_calibration(test, calib))
    for k in FINDINGS:
        assert cal[k]["ece"] < 0.03 < raw[k]["ece"]
        assert cal[k]["brier"] < raw[k]["brier"]


def test_apply_is_the_documented_formula_and_keeps_other_columns() -> None:
    df = _inflated(50, 2)
    calib = {"method": "platt", "fitted_on": "val", "params": {k: {"a": 0.5 + j, "b": -j} for j, k in
                                                               enumerate(FINDINGS)}}
    out = apply_calibration(df, calib)
    for j, k in enumerate(FINDINGS):
        expected = 1 / (1 + np.exp(-((0.5 + j) * np.log(df[f"p_{k}"] / (1 - df[f"p_{k}"])) - j)))
        assert out[f"p_{k}"].to_numpy() == pytest.approx(expected.to_numpy())
    assert out[list(FINDINGS)].equals(df[list(FINDINGS)]) and df["p_Mass"].equals(_inflated(50, 2)["p_Mass"])
    with pytest.raises(LungpriorError, match="unknown method"):
        apply_calibration(df, {"method": "isotonic", "params": {}})
    with pytest.raises(LungpriorError, match="no column p_Foo"):
        apply_calibration(df, {"method": "platt", "params": {"Foo": {"a": 1, "b": 0}}})


def test_brier_and_ece_against_references() -> None:
    rng = np.random.default_rng(3)
    y, p = (rng.random(500) < 0.3).astype(int), rng.random(500)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    # ECE by hand: two bins used
    y2, p2 = np.array([0, 1, 1, 0, 1]), np.array([0.02, 0.08, 0.92, 0.98, 0.5])
    assert ece(y2, p2) == pytest.approx((2 * abs(0.5 - 0.05) + 2 * abs(0.5 - 0.95) + abs(1 - 0.5)) / 5)
    assert ece(np.ones(3), np.ones(3)) == 0.0
    assert fit_platt(np.zeros(5), np.full(5, 0.3)) == {"a": 1.0, "b": 0.0}
    assert logit([0.0, 1.0]) == pytest.approx([-13.8155, 13.8155], abs=1e-3)


def test_sigmoid_of_extreme_logits_is_finite_and_silent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
