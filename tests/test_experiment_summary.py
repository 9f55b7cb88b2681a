"""summary.csv: AUROC over seeds per backbone x mask x class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lungprior.experiment.summary import SUMMARY_COLUMNS, seed_summary


def _rows(seed: int, shift: float) -> list[dict]:
    rows = []
    for backbone in ("resnet18", "densenet121"):
        for mask in ("original", "tight"):
            for k, cls in enumerate(("Mass", "macro")):
                rows.append({"backbone": backbone, "mask": mask, "class": cls, "seed": seed,
                             "auroc": 0.5 + 0.1 * k + shift + (0.05 if mask == "tight" else 0.0),
                             "attention_in_lung": 0.4 + shift if mask == "tight" else None})
    return rows


def test_mean_sd_min_max_over_seeds_in_run_order() -> None:
    results = pd.DataFrame(_rows(0, 0.0) + _rows(1, 0.02) + _rows(2, 0.07))
    out = seed_summary(results)
    assert list(out.columns) == SUMMARY_COLUMNS and len(out) == 8
    assert out[["backbone", "mask", "class"]].iloc[0].tolist() == ["resnet18", "original", "Mass"]
    assert out["backbone"].tolist()[:4] == ["resnet18"] * 4  # the runs' order, not alphabetical
    row = out[(out["backbone"] == "densenet121") & (out["mask"] == "tight") & (out["class"] == "macro")].iloc[0]
    values = np.array([0.65, 0.67, 0.72])
    assert row["n_seeds"] == 3
    assert row["auroc_mean"] == pytest.approx(values.mean())
    assert row["auroc_sd"] == pytest.approx(values.std(ddof=1))
    assert (row["auroc_min"], row["auroc_max"]) == pytest.approx((0.65, 0.72))
    assert row["attention_in_lung_mean"] == pytest.approx(np.mean([0.4, 0.42, 0.47]))
    results.loc[0, "auroc"] = float("nan")  # a class without positives in one seed: two seeds with an AUROC
    first = seed_summary(results).iloc[0]
    assert (first["n_seeds"], first["n_runs"]) == (2, 3)
    assert first["auroc_mean"] == pytest.approx(np.mean([0.52, 0.57]))
    original = out[(out["mask"] == "original")]
    assert original["attention_in_lung_mean"].isna().all()


def test_one_seed_has_no_sd_and_empty_results_give_an_empty_table() -> None:
    out = seed_summary(pd.DataFrame(_rows(0, 0.0)))
    assert (out["n_seeds"] == 1).all() and out["auroc_sd"].isna().all()
    assert seed_summary(pd.DataFrame(columns=["backbone", "mask", "class", "auroc", "attention_in_lung"])).empty
