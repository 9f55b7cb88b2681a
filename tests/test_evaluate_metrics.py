"""Run metrics and run comparisons on prediction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lungprior.errors import LungpriorError
from lungprior.evaluate.compare import compare_predictions
from lungprior.evaluate.metrics import evaluation_metrics
from lungprior.evaluate.stats import DegenerateDataWarning, delong_test
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
        assert 0 < m["per_class"][k]["sensitivity"] < 1
        aucs.append(ref)
    assert m["macro_auroc"]["estimate"] == pytest.approx(np.mean(aucs))
    assert m["macro_auroc"]["low"] < m["macro_auroc"]["estimate"] < m["macro_auroc"]["high"]
    nf_ref = roc_auc_score(test[NO_FINDING], 1 - test[[f"p_{k}" for k in FINDINGS]].max(axis=1))
    assert m["no_finding"]["auroc"]["estimate"] == pytest.approx(nf_ref)
    prod = evaluation_metrics(test, val, n_resamples=50, no_finding="prod")["no_finding"]["auroc"]["estimate"]
    assert prod != pytest.approx(nf_ref)
    assert m["n_patients"] == 150


def test_class_without_positives_is_null_with_warning() -> None:
    test = _predictions(seed=3, drop="Edema")
    with pytest.warns(DegenerateDataWarning, match="Edema"):
        m = evaluation_metrics(test, _predictions(seed=4), n_resamples=50)
    assert m["per_class"]["Edema"]["auroc"]["estimate"] is None
    assert m["macro_auroc"]["estimate"] is not None


def test_compare_equals_delong_and_refuses_other_images() -> None:
    a, b = _predictions(seed=5, signal=2.0), _predictions(seed=5, signal=2.0)
    rng = np.random.default_rng(9)
    for k in FINDINGS:  # model B: noisier scores on the same images
        b[f"p_{k}"] = np.clip(b[f"p_{k}"] + rng.normal(0, 0.3, len(b)), 0, 1)
    table = compare_predictions(a, b.sample(frac=1.0, random_state=0), names=("orig", "tight"), n_resamples=200)
    for k in FINDINGS:
        ref = delong_test(a[k], a[f"p_{k}"], b[f"p_{k}"])
        row = table[table["target"] == k].iloc[0]
        assert row["p"] == pytest.approx(ref.p) and row["diff"] == pytest.approx(ref.diff)
        assert row["p_holm"] >= row["p"]
    macro = table[table["target"] == "macro AUROC"].iloc[0]
    assert macro["diff"] > 0 and macro["ci_low"] < macro["diff"] < macro["ci_high"]
    with pytest.raises(LungpriorError, match="not evaluated on the same images"):
        compare_predictions(a, b.iloc[1:], n_resamples=10)
    with pytest.raises(LungpriorError, match="missing column"):
        compare_predictions(a.drop(columns=["p_Mass"]), b, n_resamples=10)
