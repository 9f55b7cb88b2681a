"""Monotone Platt calibration per class (fitted on val), its fallbacks, its JSON contract, Brier score and ECE."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import (
    apply_calibration,
    brier,
    calibrate_scores,
    calibration_metrics,
    calibration_status,
    check_calibration,
    ece,
    fit_calibration,
    fit_class,
    fit_platt,
    logit,
    read_calibration,
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
        assert calib["params"][k]["method"] == "platt" and calib["params"][k]["reason"] == ""
        assert calib["params"][k]["n_pos"] == int(val[k].sum())
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
    raw = {"method": "platt", "params": {"Mass": {"method": "raw", "reason": "raw scores: 1 validation film"}}}
    assert apply_calibration(df, raw)["p_Mass"].equals(df["p_Mass"])


def test_brier_and_ece_against_references() -> None:
    rng = np.random.default_rng(3)
    y, p = (rng.random(500) < 0.3).astype(int), rng.random(500)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
    # ECE by hand: two bins used
    y2, p2 = np.array([0, 1, 1, 0, 1]), np.array([0.02, 0.08, 0.92, 0.98, 0.5])
    assert ece(y2, p2) == pytest.approx((2 * abs(0.5 - 0.05) + 2 * abs(0.5 - 0.95) + abs(1 - 0.5)) / 5)
    assert ece(np.ones(3), np.ones(3)) == 0.0
    assert logit([0.0, 1.0]) == pytest.approx([-13.8155, 13.8155], abs=1e-3)


def test_sigmoid_of_extreme_logits_is_finite_and_silent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


@pytest.mark.parametrize(("calib", "message"), [
    ({"method": "temperature", "params": {}}, "unknown method 'temperature'"),
    ({"method": "platt", "params": [1.0, 2.0]}, "'params' must map each finding"),
    ({"method": "platt", "params": {"Mass": [1.0, 0.0]}}, "params.Mass must be an object"),
    ({"method": "platt", "params": {"Mass": {"a": float("nan"), "b": 0.0}}}, "params.Mass.a is nan"),
    ({"method": "platt", "params": {"Mass": {"a": 1.0, "b": float("inf")}}}, "params.Mass.b is inf"),
    ({"method": "platt", "params": {"Mass": {"a": "1", "b": 0.0}}}, "params.Mass.a must be a number"),
    ({"method": "platt", "params": {"Mass": {"a": -11.1, "b": 0.0}}}, "params.Mass.a = -11.1 is not positive"),
    ({"method": "platt", "params": {"Mass": {"a": 0, "b": 0.0}}}, "params.Mass.a = 0 is not positive"),
    ({"method": "platt", "params": {"Mass": {"method": "isotonic"}}}, "params.Mass.method 'isotonic' is unknown"),
    ([1, 2], "expected a JSON object"),
])
def test_a_calibration_file_is_untrusted_input(tmp_path, calib, message) -> None:
    with pytest.raises(LungpriorError, match=re.escape(message)):
        check_calibration(calib)
    (tmp_path / "calibration.json").write_text(json.dumps(calib))
    with pytest.raises(LungpriorError, match=re.escape(message)) as err:
        read_calibration(tmp_path)
    assert str(tmp_path / "calibration.json") in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "calibration.json").write_text("{not json")
    with pytest.raises(LungpriorError, match="not a calibration file"):
        read_calibration(tmp_path)
    assert read_calibration(tmp_path / "nowhere") is None


def _adversarial(kind: str, rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Validation labels and raw scores: separable, one positive, inverted (positives score low), tied, random."""
    y = (rng.random(n) < rng.uniform(0.05, 0.5)).astype(int)
    y[0], y[1] = 1, 0
    p = rng.random(n)
    if kind == "separable":
        p = np.where(y == 1, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    elif kind == "one positive":
        y[:] = 0
        y[rng.integers(n)] = 1
    elif kind == "inverted":
        p = np.clip(np.where(y == 1, rng.normal(0.2, 0.1, n), rng.normal(0.7, 0.15, n)), 1e-4, 1 - 1e-4)
    elif kind == "tied":
        p = rng.choice([0.1, 0.5, 0.9], n)
    elif kind == "extreme":
        p = rng.choice([0.0, 1e-9, 1 - 1e-9, 1.0, 0.5], n)
    return y, p


@pytest.mark.parametrize("kind", ["separable", "one positive", "inverted", "tied", "extreme", "random"])
def test_no_calibrated_score_reverses_two_raw_scores(kind: str) -> None:
    """Property over many random adversarial validation sets: for every pair of raw scores p1 < p2 of a class,
    the calibrated scores keep p1 <= p2 (and strictly where float precision allows)."""
    rng = np.random.default_rng(len(kind))
    grid = np.sort(np.concatenate([rng.random(300), [0.0, 1e-9, 1e-6, 0.5, 1 - 1e-6, 1.0]]))
    for _ in range(150):
        y, p = _adversarial(kind, rng)
        entry = fit_class(y, p)
        if kind == "separable":
            assert entry["method"] == "raw" and entry["reason"]
        if kind == "one positive":
            assert entry["method"] == "raw" and entry["reason"].startswith("raw scores: 1 validation films")
        if entry["method"] == "platt":
            assert entry["a"] > 0
        calib = {"method": "platt", "params": {"Mass": entry}}
        out = calibrate_scores(np.column_stack([grid] + [grid] * (len(FINDINGS) - 1)), calib)[:, 0]
        assert np.all(np.diff(out) >= 0), (kind, entry)
        assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
        # and the fit itself, forced on data the fallback would refuse, is still increasing
        forced = fit_platt(y, p)
        assert forced["a"] > 0 and np.all(np.diff(sigmoid(forced["a"] * logit(grid) + forced["b"])) >= 0)


def test_fallbacks_are_recorded_per_class() -> None:
    val = _inflated(400, 5)
    val["Nodule"] = 0
    val.loc[:2, "Nodule"] = 1  # 3 positives
    val["p_Edema"] = np.where(val["Edema"] == 1, 0.9, 0.1)  # separable
    calib = fit_calibration(val)
    nodule, edema, mass = (calib["params"][k] for k in ("Nodule", "Edema", "Mass"))
    assert nodule == {"method": "raw", "n_pos": 3, "n_neg": 397, "reason": "raw scores: 3 validation films with "
                      "the finding (needs ≥ 5 with and ≥ 5 without)"}
    assert edema["method"] == "raw" and "separates" in edema["reason"]
    assert mass["method"] == "platt" and mass["a"] > 0
    status = calibration_status(calib)
    assert status["Nodule"].startswith("raw scores: 3 validation films") and status["Mass"].startswith("calibrated")
    assert calibration_status(None)["Mass"] == "raw: the run has no calibration.json"
    out = apply_calibration(val, calib)
    assert out["p_Nodule"].equals(val["p_Nodule"]) and not out["p_Mass"].equals(val["p_Mass"])
    assert json.loads(json.dumps(calib)) == calib
