"""scripts/benchmark_tables.py on a small fake experiment folder: corrected statistics in every table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungprior.evaluate.compare import compare_predictions
from lungprior.labels import FINDINGS, NO_FINDING

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_tables.py"
MASKS = {"original": 0.6, "loose-10mm": 1.0, "tight": 1.4}


def _script():
    spec = importlib.util.spec_from_file_location("benchmark_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labels(n_patients: int, films: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), films)
    y = (rng.random((n_patients, len(FINDINGS))) < 0.3)[patients].astype(int)
    df = pd.DataFrame(y, columns=list(FINDINGS))
    df[NO_FINDING] = (y.sum(axis=1) == 0).astype(int)
    df.insert(0, "patient_id", [f"P{p:03d}" for p in patients])
    df.insert(0, "image_id", [f"img{i:04d}" for i in range(len(df))])
    return df


def _experiment(root: Path) -> Path:
    exp = root / "exp"
    (exp / "data").mkdir(parents=True)
    test, val = _labels(40, 3, 0), _labels(20, 2, 1)
    rng = np.random.default_rng(2)
    manifest = root / "bench" / "manifest.csv"
    manifest.parent.mkdir()
    markers = pd.DataFrame({"image_id": test["image_id"],
                            **{f"marker_{f}": (rng.random(len(test)) < 0.3).astype(int) for f in FINDINGS}})
    markers.to_csv(manifest.parent / "markers.csv", index=False)
    (exp / "data" / "stage.json").write_text(json.dumps({"manifest": str(manifest)}))
    results, eff = [], []
    for mask, signal in MASKS.items():
        for seed in (0, 1):
            run_dir = exp / "runs" / f"{mask}_s{seed}"
            run_dir.mkdir(parents=True)
            for split, df in (("predictions.csv", test), ("predictions_val.csv", val)):
                out = df.copy()
                for f in FINDINGS:
                    shortcut = 2.0 * markers[f"marker_{f}"].to_numpy() if mask == "original" and split == \
                        "predictions.csv" else 0.0
                    x = signal * out[f] + shortcut + rng.normal(size=len(out))
                    out[f"p_{f}"] = 1 / (1 + np.exp(-(x - 1.5)))
                out.to_csv(run_dir / split, index=False)
            (run_dir / "stage.json").write_text(json.dumps({"backbone": "resnet18", "mask": mask, "seed": seed,
                                                            "mode": mask.split("-")[0], "run_dir": str(run_dir)}))
            results += [{"backbone": "resnet18", "mask": mask, "seed": seed, "class": t, "auroc": 0.5 + signal / 5}
                        for t in [*FINDINGS, "macro", NO_FINDING]]
            eff.append({"backbone": "resnet18", "mask": mask, "seed": seed, "best_epoch": 3, "epochs_run": 5,
                        "seconds_to_best": 10.0, "seconds_per_epoch": 2.0, "best_val_auroc": 0.7})
    pd.DataFrame(results).to_csv(exp / "results.csv", index=False)
    pd.DataFrame(eff).to_csv(exp / "efficiency.csv", index=False)
    return exp


def test_tables_use_clustered_tests_cis_and_pooled_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    exp = _experiment(tmp_path)
    module = _script()
    monkeypatch.setattr(sys, "argv", ["benchmark_tables.py", str(exp), "--bootstrap", "200"])
    module.main()
    out = capsys.readouterr().out
    assert "### tight − original" in out and "### loose-10mm − tight" in out
    assert "patient jackknife" in out and "Holm-adjusted over the six" in out
    # the per-seed cell is compare_predictions' row: difference [95% CI], Holm p
    a = pd.read_csv(exp / "runs" / "tight_s1" / "predictions.csv", dtype={"image_id": str, "patient_id": str})
    b = pd.read_csv(exp / "runs" / "original_s1" / "predictions.csv", dtype={"image_id": str, "patient_id": str})
    row = compare_predictions(a, b, n_resamples=200, seed=1).set_index("target").loc["Edema"]
    cell = f"{row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], p {module.fmt_p(row['p_holm'])}"
    assert cell in out
    assert "pooled over 2 seeds" in out and "per seed (↑ higher" in out
    shortcut = out.split("### Shortcut reliance")[1].split("###")[0]
    original = next(line for line in shortcut.splitlines() if line.startswith("| original"))
    assert original.count("[") == len(FINDINGS)  # every reliance value has its CI
    assert "seed variation, not a CI" in out
    assert "| mask | val macro AUROC | test macro AUROC |" in out  # no phantom.json: no bias named
    (exp.parent / "bench" / "phantom.json").write_text(json.dumps({"bias": 0.9, "val_bias": 0.0, "test_bias": 0.0}))
    module.main()
    assert "| mask | val macro AUROC (bias 0) | test macro AUROC (bias 0) |" in capsys.readouterr().out


def test_p_at_the_bootstrap_floor_is_not_printed_as_a_value() -> None:
    module = _script()
    assert module.fmt_p(2 / 251, 2 / 251) == "≤ 0.008 (bootstrap floor)"
    assert module.fmt_p(0.012, 2 / 251) == "0.012"
    assert module.fmt_p(3e-5) == "3e-05"


def test_efficiency_table_reports_late_validation_change(tmp_path: Path) -> None:
    module = _script()
    runs = []
    for mask, curve in (("original", [0.5, 0.6, 0.7, 0.75, 0.8, 0.9]), ("tight", [0.5, 0.7, 0.7, 0.7, 0.7, 0.7])):
        run_dir = tmp_path / mask
        run_dir.mkdir()
        pd.DataFrame({"epoch": range(len(curve)), "val_auroc": curve}).to_csv(run_dir / "history.csv", index=False)
        runs.append({"mask": mask, "run_dir": str(run_dir)})
    runs.append({"mask": "loose-10mm", "run_dir": str(tmp_path / "missing")})
    late = module.late_change(runs, ["original", "tight", "loose-10mm"])
    assert late["original"].tolist() == pytest.approx([0.9 - 0.6]) and late["tight"].tolist() == [0.0]
    assert late["loose-10mm"].empty
    eff = pd.DataFrame([{"mask": m, "best_epoch": 5, "epochs_run": 6, "seconds_to_best": 1.0,
                         "seconds_per_epoch": 0.2, "best_val_auroc": 0.9} for m in ("original", "tight", "loose-10mm")])
    table = module.efficiency_table(eff, ["original", "tight", "loose-10mm"], late)
    assert "val AUROC change, last 4 epochs" in table
    assert "| original |" in table and "0.300" in table and table.splitlines()[-1].endswith("| – |")
