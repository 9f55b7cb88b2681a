"""Per-finding prior choice and best radius, from runs' test predictions (synthetic, known answer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.report.recommend import choose, recommendation_section


def _write_runs(root: Path, n: int = 300) -> list[dict]:
    """tight is good at Mass, loose-20mm at Edema, original at the rest; nolung (a control) is perfect."""
    rng = np.random.default_rng(0)
    labels = rng.random((n, len(FINDINGS))) < 0.3
    base = pd.DataFrame({"image_id": [f"i{k:04d}" for k in range(n)], "patient_id": [f"p{k // 2}" for k in range(n)]})
    for j, f in enumerate(FINDINGS):
        base[f] = labels[:, j].astype(int)
    base[NO_FINDING] = (~labels.any(axis=1)).astype(int)
    strong = {"tight": "Mass", "loose": "Edema"}
    runs = []
    for mode, radius in (("tight", None), ("loose", 20.0), ("original", None), ("nolung", None)):
        for seed in (0, 1):
            df = base.copy()
            for j, f in enumerate(FINDINGS):
                good = mode == "nolung" or strong.get(mode) == f or (mode == "original" and f not in strong.values())
                noise = 0.4 if good else 1.5
                df[f"p_{f}"] = 1 / (1 + np.exp(-(labels[:, j] * 2.0 - 1 + rng.normal(0, noise, n))))
            mask = {"tight": "tight", "loose": "loose-20mm"}.get(mode, mode)
            run_dir = root / f"{mask}_{seed}"
            run_dir.mkdir()
            df.sample(frac=1.0, random_state=seed).to_csv(run_dir / "predictions.csv", index=False)  # any row order
            runs.append({"backbone": "b", "mask": mask, "mode": mode, "radius_mm": radius, "seed": seed,
                         "run_dir": str(run_dir)})
    return runs


def test_choose_recommends_the_right_prior_and_radius(tmp_path: Path) -> None:
    runs = _write_runs(tmp_path)
    rec = choose(runs, n_resamples=200).set_index("target")
    assert rec.loc["Mass", "best"] == "tight" and rec.loc["Edema", "best"] == "loose-20mm"
    assert rec.loc["Nodule", "best"] == "original"
    assert "nolung" not in set(rec["best"]) | set(rec["runner_up"])
    assert rec.loc["Mass", "win_share"] > 0.9 and rec.loc["Mass", "ci_low"] < rec.loc["Mass", "auroc"] < rec.loc[
        "Mass", "ci_high"]
    assert rec.loc["Edema", "radius_mm"] == 20.0 and rec.loc["Mass", "radius_mm"] == 0.0
    assert math.isinf(rec.loc["Nodule", "radius_mm"]) and rec.loc["Mass", "radius_low"] == 0.0
    only_loose = choose(runs, modes=("tight", "loose"), n_resamples=50)
    assert set(only_loose["best"]) <= {"tight", "loose-20mm"}
    html = recommendation_section(runs, "max", lambda df: df.to_html(), n_resamples=50)
    assert "Which prior for which finding" in html and "Best radius per finding" in html and "20 mm" in html


def test_nothing_at_or_below_chance_is_recommended(tmp_path: Path) -> None:
    runs = _write_runs(tmp_path)
    for r in runs:  # every prior ranks Fibrosis backwards
        df = pd.read_csv(Path(r["run_dir"]) / "predictions.csv")
        df["p_Fibrosis"] = 1 - df["p_Fibrosis"]
        df.to_csv(Path(r["run_dir"]) / "predictions.csv", index=False)
    rec = choose(runs, n_resamples=50).set_index("target")
    assert rec.loc["Fibrosis", "best"] == "none (no input above chance)" and rec.loc["Fibrosis", "auroc"] < 0.5
    assert rec.loc["Mass", "best"] == "tight"
    comparisons = pd.DataFrame([{"backbone": "b", "seed": s, "mask": "tight", "target": "Mass", "diff": 0.1,
                                 "p": 0.001, "p_holm": 0.006, "testable": True} for s in (0, 1)])
    html = recommendation_section(runs, "max", lambda df: df.to_html(), n_resamples=50, comparisons=comparisons)
    assert "none (no input above chance)" in html and "↑2/2 (sig. 2)" in html


def test_no_finding_uses_each_runs_calibrated_probabilities(tmp_path: Path) -> None:
    """A calibration that changes the scale of one class changes the No Finding ranking, not the class's AUROC."""
    import json

    runs = _write_runs(tmp_path)
    before = choose(runs, n_resamples=20).set_index("target")
    params = {k: {"method": "platt", "a": 1.0, "b": (4.0 if k == "Mass" else 0.0)} for k in FINDINGS}
    for r in runs:
        (Path(r["run_dir"]) / "calibration.json").write_text(json.dumps({"method": "platt", "params": params}))
    after = choose(runs, n_resamples=20).set_index("target")
    assert after.loc["Mass", "auroc"] == pytest.approx(before.loc["Mass", "auroc"])
    assert after.loc[NO_FINDING, "auroc"] != pytest.approx(before.loc[NO_FINDING, "auroc"])
