"""The warnings a user sees: collected per run and per experiment from what the runs record, printed by the
commands and shown at the top of the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.classify.module import macro_auroc, per_finding_auroc, undefined_auroc_message
from lungprior.evaluate.metrics import evaluation_metrics
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.report.run_warnings import (
    comparison_warnings,
    experiment_warnings,
    print_warnings,
    run_warnings,
    warnings_html,
)

NOTE = "not testable: 2 films with the finding from 1 patient (needs ≥ 5 patients with and ≥ 5 without)"


def _predictions(n: int, seed: int, nodule_patients: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(FINDINGS))) < 0.25).astype(int)
    df = pd.DataFrame(y, columns=list(FINDINGS))
    df.insert(0, "patient_id", [f"P{i // 2}" for i in range(n)])
    df.insert(0, "image_id", [f"i{i:04d}" for i in range(n)])
    if nodule_patients is not None:  # Nodule only in the first patient's two films
        df["Nodule"] = 0
        df.loc[: 2 * nodule_patients - 1, "Nodule"] = 1
    df[NO_FINDING] = (df[list(FINDINGS)].sum(axis=1) == 0).astype(int)
    for k in FINDINGS:
        df[f"p_{k}"] = 1 / (1 + np.exp(-(1.5 * df[k] + rng.normal(0, 1, n))))
    return df


def _run(root: Path, name: str, *, kept: int = 0, nan_epochs: int = 0) -> Path:
    run = root / name
    run.mkdir(parents=True)
    hist = pd.DataFrame({"epoch": range(3), "val_auroc": 0.7,
                         **{f"val_auroc_{k}": [0.7, 0.7, 0.7] for k in FINDINGS}})
    hist.loc[: nan_epochs - 1, "val_auroc_Edema"] = math.nan
    hist.to_csv(run / "history.csv", index=False)
    if kept:
        pd.DataFrame({"image_id": [f"i{k}" for k in range(kept)], "reason": "area 0.02 too small",
                      "action": "kept"}).to_csv(run / "excluded.csv", index=False)
    metrics = evaluation_metrics(_predictions(40, 1, nodule_patients=1), _predictions(80, 2), n_resamples=200)
    metrics["attention"] = {"per_class": {"Mass": {"n_images": 8, "flat_cams": 7}}, "cam_size": [2, 2],
                            "not_measurable": "Grad-CAM map of 2×2 cells at 64 px input (coarser than 7×7): "
                                              "attention in lung and pointing game not measurable"}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_skipped_bootstrap_resamples_are_named_per_class() -> None:
    m = evaluation_metrics(_predictions(40, 1, nodule_patients=1), None, n_resamples=200)
    skipped = [w for w in m["warnings"] if "bootstrap resamples skipped" in w]
    assert any(w.startswith("Nodule: ") and "2 test film(s) have it" in w for w in skipped)
    macro = next(w for w in skipped if w.startswith("macro AUROC: "))
    assert "(a class absent: Nodule in " in macro
    assert not any("(a class absent)" in w for w in m["warnings"])  # the old unnamed message is gone
    empty = evaluation_metrics(_predictions(40, 1, nodule_patients=0), None, n_resamples=50)
    assert "Nodule: no film with the finding in the test split; AUROC undefined" in empty["warnings"]


def test_a_run_lists_training_exclusion_metrics_and_cam_warnings(tmp_path: Path) -> None:
    run = _run(tmp_path, "r", kept=3, nan_epochs=3)
    got = run_warnings(run)
    assert got[0].startswith("training: validation AUROC undefined for Edema (every epoch)")
    assert "the macro validation AUROC is over 4 of 5 findings" in got[0]
    assert any(w.startswith("trained on 3 film(s) whose lung mask QC flagged (kept with --allow-qc-fail)")
               for w in got)
    assert any(w.startswith("Nodule: ") and "bootstrap resamples skipped" in w for w in got)
    assert any("2×2" in w and "not measurable" in w for w in got)
    assert "Grad-CAM: flat (constant) maps, no attention measured on them: Mass 7 of 8" in got
    assert len(got) == len(set(got))
    assert run_warnings(tmp_path / "missing") == []


def test_an_experiment_groups_shared_lines_and_names_untestable_comparisons(tmp_path: Path) -> None:
    runs = [{"run_dir": str(_run(tmp_path, m, nan_epochs=1 if m == "tight" else 0)), "backbone": "resnet18",
             "mask": m, "seed": 0} for m in ("original", "tight")]
    pd.DataFrame([{"backbone": "resnet18", "seed": 0, "mask": m, "target": "Nodule", "testable": False,
                   "note": NOTE} for m in ("tight", "loose-10mm")]).to_csv(tmp_path / "comparisons.csv", index=False)
    got = experiment_warnings(tmp_path, runs)
    assert any(w.endswith("[all runs]") and "not measurable" in w for w in got)
    assert any(w.startswith("training: validation AUROC undefined for Edema (1 of 3 epochs)")
               and w.endswith("[resnet18 tight seed 0]") for w in got)
    assert got[-1] == f"Nodule vs original (tight, loose-10mm): {NOTE}; no p, no claim"
    page = warnings_html(got)
    assert page.startswith("<div class='warnings' id='warnings'><p><b>Warnings (") and page.count("<li>") == len(got)
    assert "No warnings." in warnings_html([])
    printed: list[str] = []
    print_warnings(printed.append, got)
    assert printed[0] == f"Warnings ({len(got)}):" and printed[1:] == [f"- {w}" for w in got]
    assert comparison_warnings(pd.DataFrame({"target": ["Mass"], "p": [0.1]})) == []


def test_training_names_the_class_with_an_undefined_validation_auroc() -> None:
    labels = np.zeros((20, len(FINDINGS)))
    labels[:5, :3] = 1  # Edema and Fibrosis have no positives
    aucs = per_finding_auroc(labels, np.random.default_rng(0).random(labels.shape))
    assert math.isnan(aucs["Edema"]) and math.isnan(aucs["Fibrosis"]) and not math.isnan(macro_auroc(aucs))
    assert undefined_auroc_message(aucs) == (
        "validation AUROC undefined for Edema, Fibrosis (the validation split has no film with, or none without, "
        "the finding); the macro validation AUROC is over 3 of 5 findings")


def test_masks_from_the_bundled_segmentation_weights_are_named(tmp_path: Path) -> None:
    from lungprior.segment.weights import LITEMEDSAM_SHA256

    for name, sha, source, expected in (("bundled", LITEMEDSAM_SHA256, "model", True),
                                        ("tuned", "0" * 64, "model", False),
                                        ("given", LITEMEDSAM_SHA256, "masks_dir", False)):
        run = tmp_path / name
        run.mkdir()
        record = {"source": source, "backend": "litemedsam", "weights_sha256": sha}  # as `train` records it
        (run / "segmentation.json").write_text(json.dumps(record))
        got = run_warnings(run)
        assert any(w.startswith("segmentation: masks from the bundled LiteMedSAM weights") for w in got) == expected
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "segmentation.json").write_text("{not json")
    assert run_warnings(tmp_path / "broken") == []
