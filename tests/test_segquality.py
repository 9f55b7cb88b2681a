"""Segmentation QC in the report: only masks whose QC flag is not `ok` count as flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungprior.data.io import read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.segquality import flagged_count
from lungprior.layout import mask_path_for
from lungprior.report.html import _segmentation_section
from lungprior.segment.infer.qc import qc_row


def test_flagged_count_counts_every_flag_but_ok() -> None:
    qc = pd.DataFrame({"flag": ["ok", "ok", "empty", "implausible", None, " ok "]})
    assert flagged_count(qc) == 3  # empty, implausible and a missing flag; " ok " is ok
    assert flagged_count(pd.DataFrame({"flag": ["ok"] * 4})) == 0
    assert flagged_count(pd.DataFrame({"image_id": ["a"]})) == 0


def test_report_counts_flagged_masks_from_qc(tmp_path) -> None:
    bench = tmp_path / "bench"
    generate_benchmark(PhantomConfig(n=6, size=64, seed=3), bench, workers=1, progress=False)
    manifest = pd.read_csv(bench / "manifest.csv")
    rows = []
    for image_id in manifest["image_id"]:
        lungs = read_mask(mask_path_for(bench / "masks", image_id))
        rows.append(qc_row(image_id, lungs, lungs.astype(float), "auto"))  # ground-truth lungs: plausible
    qc = pd.DataFrame(rows)
    assert (qc["flag"] == "ok").all()
    seg = {"masks_dir": str(bench / "masks"), "qc": str(tmp_path / "qc.csv")}
    cfg = ExperimentConfig(masks=[{"mode": "original"}])  # no masked mode: no overlay figure needed
    qc.to_csv(seg["qc"], index=False)
    html = _segmentation_section(cfg, bench / "manifest.csv", seg)
    assert f"Flagged masks (QC flag not ok): 0 of {len(qc)}" in html
    empty = qc_row("blank", np.zeros_like(lungs), lungs.astype(float), "auto")
    assert empty["flag"] == "empty"
    pd.concat([qc, pd.DataFrame([empty])]).to_csv(seg["qc"], index=False)
    html = _segmentation_section(cfg, bench / "manifest.csv", seg)
    assert f"Flagged masks (QC flag not ok): 1 of {len(qc) + 1}" in html


def test_check_films_segments_only_test_films_and_scores_them(tmp_path) -> None:
    from lungprior.experiment.runner import _check

    bench = tmp_path / "bench"
    generate_benchmark(PhantomConfig(n=12, size=256, seed=5), bench, workers=1, progress=False)
    cfg = ExperimentConfig.model_validate({"segmentation": {"source": "ground_truth", "check_films": 2}})
    record = _check(cfg, bench / "manifest.csv", tmp_path / "seg")
    sample = pd.read_csv(tmp_path / "seg" / "check_manifest.csv")
    assert len(sample) == 2 and (sample["split"] == "test").all()
    assert record["check"]["films"] == 2 and record["failed"] == 0
    assert list(record["quality"]["splits"]) == ["test"] and record["quality"]["n_scored"] == 2
    assert record["quality"]["splits"]["test"]["dice_mean"] > 0.8  # LiteMedSAM, prompt-free, on the phantom
    assert len(pd.read_csv(record["qc"])) == 2
