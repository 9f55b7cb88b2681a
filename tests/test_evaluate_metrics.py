"""Run metrics and run comparisons on prediction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import apply_calibration, fit_calibration
from lungprior.evaluate.clustered import delong_paired
from lungprior.evaluate.compare import compare_predictions
from lungprior.evaluate.jackknife import jackknife_macro_test, jackknife_test
from lungprior.evaluate.metrics import evaluation_metrics
from lungprior.evaluate.stats import DegenerateDataWarning, delong_test, holm_adjust, sens_spec, youden_threshold
from lungprior.labels import FINDINGS, NO_FINDING


def _predictions(n: int = 300, seed: int = 0, signal: float = 1.5, drop: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(FINDINGS))) < 0.2).astype(int)
    if drop:
        y[:, FINDINGS.index(drop)] = 0
    logits = signal * y + rng.normal(0, 1, y.shape)
    df = pd.DataFrame(y, columns=list(FINDINGS))
    df[NO_FINDING] = (y.sum(axis=1) == 0).astype(int)
    df.insert(0, "patient_id", [f"P{i // 2}" for i in range(n)])
    df.insert(0, "image_id", [f"img{i:04d}" for i in range(n)])
    for j, k in enumerate(FINDINGS):
        df[f"p_{k}"] = 1 / (1 + np.exp(-logits[:, j]))
    return df


def test_metrics_match_sklearn_and_cis_bracket_estimates() -> None:
    test, val = _predictions(seed=1), _predictions(seed=2)
    m = evaluation_metrics(test, val, n_resamples=200, seed=0)
    aucs = []
    for k in FINDINGS:
        ref = roc_auc_score(test[k], test[f"p_{k}"])
        entry = m["per_class"][k]["auroc"]
        assert entry["estimate"] == pytest.approx(ref)
        assert entry["low"] < ref < entry["high"]
        assert entry["n_used"] + entry["n_skipped"] == 200
        aucs.append(ref)
    assert m["macro_auroc"]["estimate"] == pytest.approx(np.mean(aucs))
    assert m["macro_auroc"]["low"] < m["macro_auroc"]["estimate"] < m["macro_auroc"]["high"]
    cols = [f"p_{k}" for k in FINDINGS]
    nf_raw = roc_auc_score(test[NO_FINDING], 1 - test[cols].max(axis=1))
    calibrated = apply_calibration(test, fit_calibration(val))
    nf_ref = roc_auc_score(test[NO_FINDING], 1 - calibrated[cols].max(axis=1))
    assert m["no_finding"]["auroc"]["estimate"] == pytest.approx(nf_ref)
    assert m["no_finding"]["auroc_uncalibrated"] == pytest.approx(nf_raw)
    assert m["no_finding"]["auroc_change_from_calibration"] == pytest.approx(nf_ref - nf_raw)
    assert m["no_finding"]["probabilities"].startswith("calibrated")
    prod = evaluation_metrics(test, val, n_resamples=50, no_finding="prod")["no_finding"]["auroc"]["estimate"]
    assert prod != pytest.approx(nf_ref)
    assert m["calibration"]["fitted_on"] == "val" and set(m["calibration"]["params"]) == set(FINDINGS)
    assert not m["thresholds"]["in_sample"] and not any("in-sample" in n for n in m["warnings"])
    assert m["n_patients"] == 150


def test_thresholds_are_chosen_on_val_and_applied_to_test() -> None:
    test = _predictions(seed=1)
    val = _predictions(seed=2)
    for k in FINDINGS:  # validation scores shifted up: the val-chosen threshold is much higher than test's own
        val[f"p_{k}"] = 1 / (1 + np.exp(-(np.log(val[f"p_{k}"] / (1 - val[f"p_{k}"])) + 2.0)))
    m = evaluation_metrics(test, val, n_resamples=20)
    for k in FINDINGS:
        entry = m["per_class"][k]
        t_val = youden_threshold(val[k], val[f"p_{k}"])
        assert entry["threshold"] == t_val
        assert entry["threshold"] != pytest.approx(youden_threshold(test[k], test[f"p_{k}"]), abs=0.05)
        assert (entry["sensitivity"], entry["specificity"]) == sens_spec(test[k], test[f"p_{k}"], t_val)
    nf_val = 1 - apply_calibration(val, fit_calibration(val))[[f"p_{k}" for k in FINDINGS]].max(axis=1)
    assert m["no_finding"]["threshold"] == pytest.approx(youden_threshold(val[NO_FINDING], nf_val))
    in_sample = evaluation_metrics(val, val, n_resamples=20, in_sample=True)
    assert in_sample["thresholds"]["in_sample"] and any("in-sample" in n for n in in_sample["warnings"])


def test_perfect_class_warns_about_its_zero_width_interval() -> None:
    test = _predictions(seed=7)
    test["p_Edema"] = 0.1 + 0.8 * test["Edema"]
    m = evaluation_metrics(test, n_resamples=50)
    ci = m["per_class"]["Edema"]["auroc"]
    assert ci["estimate"] == ci["low"] == ci["high"] == 1.0
    assert any(n.startswith("Edema: AUROC 1.000 with a zero-width") for n in m["warnings"])
    assert not any(n.startswith("Mass: AUROC") for n in m["warnings"])


def test_class_without_positives_is_null_with_warning() -> None:
    test = _predictions(seed=3, drop="Edema")
    with pytest.warns(DegenerateDataWarning, match="Edema"):
        m = evaluation_metrics(test, _predictions(seed=4), n_resamples=50)
    assert m["per_class"]["Edema"]["auroc"]["estimate"] is None
    assert m["macro_auroc"]["estimate"] is not None


def _noisier(a: pd.DataFrame, sd: float = 0.3) -> pd.DataFrame:
    b = a.copy()
    rng = np.random.default_rng(9)
    for k in FINDINGS:  # model B: noisier scores on the same images
        b[f"p_{k}"] = np.clip(b[f"p_{k}"] + rng.normal(0, sd, len(b)), 0, 1)
    return b


def test_compare_picks_the_clustered_test_and_gives_every_row_a_ci() -> None:
    a = _predictions(seed=5, signal=2.0)  # two films per patient
    b = _noisier(a)
    table = compare_predictions(a, b.sample(frac=1.0, random_state=0), names=("orig", "tight"), n_resamples=200)
    groups = a["patient_id"].to_numpy()
    for k in FINDINGS:
        ref = jackknife_test(a[k], a[f"p_{k}"], b[f"p_{k}"], groups)
        row = table[table["target"] == k].iloc[0]
        assert row["p"] == pytest.approx(ref.p) and row["diff"] == pytest.approx(ref.diff)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref.ci_low, ref.ci_high))
        assert row["test"].startswith("patient jackknife") and row["p_floor"] == 0 and row["testable"]
    assert table["ci_low"].notna().all() and table["ci_high"].notna().all()
    assert ((table["ci_low"] < table["diff"]) & (table["diff"] < table["ci_high"])).all()
    # the Holm family is the five findings and No Finding, not the macro row
    family = table[table["target"] != "macro AUROC"]
    assert family["target"].tolist() == [*FINDINGS, NO_FINDING]
    assert family["p_holm"].to_numpy() == pytest.approx(holm_adjust(family["p"].to_numpy()))
    nf = family.iloc[-1]
    ref = jackknife_test(a[NO_FINDING], 1 - a[[f"p_{k}" for k in FINDINGS]].max(axis=1),
                         1 - b[[f"p_{k}" for k in FINDINGS]].max(axis=1), groups)
    assert nf["p"] == pytest.approx(ref.p) and nf["test"].endswith("score max of raw probabilities")
    macro = table[table["target"] == "macro AUROC"].iloc[0]
    assert macro["diff"] > 0 and macro["ci_low"] < macro["diff"] < macro["ci_high"]
    cols = [f"p_{k}" for k in FINDINGS]
    ref = jackknife_macro_test(a[list(FINDINGS)].to_numpy(), a[cols].to_numpy(), b[cols].to_numpy(), groups)
    assert macro["p"] == pytest.approx(ref.p) and macro["diff"] == pytest.approx(ref.diff)
    assert np.isnan(macro["p_holm"]) and macro["p_floor"] == 0 and not macro["p_bound"]
    assert macro["test"].startswith("patient jackknife")


def test_compare_forced_and_single_film_tests() -> None:
    a = _predictions(seed=6, signal=2.0)
    b = _noisier(a)
    forced = compare_predictions(a, b, n_resamples=100, test="delong")
    single = compare_predictions(a.assign(patient_id=a["image_id"]), b.assign(patient_id=b["image_id"]),
                                 n_resamples=100)  # one film per patient: auto picks DeLong
    for table in (forced, single):
        for k in FINDINGS:
            ref = delong_test(a[k], a[f"p_{k}"], b[f"p_{k}"])
            t_ref = delong_paired(a[k], a[f"p_{k}"], b[f"p_{k}"], t_reference=True)
            row = table[table["target"] == k].iloc[0]
            assert row["p"] == pytest.approx(t_ref.p) and row["test"].startswith("DeLong")
            assert row["p"] > ref.p  # the t reference: never smaller than the normal one
            assert row["ci_high"] - row["ci_low"] == pytest.approx(t_ref.ci_high - t_ref.ci_low, rel=1e-12)
            assert row["ci_high"] - row["ci_low"] > 2 * 1.959964 * ref.se
    boot = compare_predictions(a, b, n_resamples=100, test="bootstrap")
    assert boot["test"].str.startswith("paired patient bootstrap").all()
    assert ((boot["ci_low"] <= boot["diff"]) & (boot["diff"] <= boot["ci_high"])).all()
    with pytest.raises(LungpriorError, match="unknown per-class test"):
        compare_predictions(a, b, n_resamples=10, test="wilcoxon")


def test_compare_refuses_other_images() -> None:
    a = _predictions(seed=5)
    b = _noisier(a)
    with pytest.raises(LungpriorError, match="not evaluated on the same images"):
        compare_predictions(a, b.iloc[1:], n_resamples=10)
    with pytest.raises(LungpriorError, match="missing column"):
        compare_predictions(a.drop(columns=["p_Mass"]), b, n_resamples=10)


def test_pointing_game_skips_flat_cams() -> None:
    from lungprior.evaluate.cam import pointing_hit

    lesion = np.zeros((8, 8), bool)
    lesion[5:7, 5:7] = True
    cam = np.zeros((8, 8))
    assert pointing_hit(cam, lesion) is None  # all-zero: no peak, not a miss at (0, 0)
    assert pointing_hit(np.full((8, 8), 0.3), lesion) is None
    cam[6, 6] = 1.0
    assert pointing_hit(cam, lesion) is True
    cam[4, 5] = 2.0  # one pixel above the lesion: within the tolerance
    assert pointing_hit(cam, lesion) is True
    cam[0, 0] = 3.0
    assert pointing_hit(cam, lesion) is False
