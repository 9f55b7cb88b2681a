"""predict's index.html says per finding whether its probabilities are calibrated, also when nothing was scored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lungprior.labels import FINDINGS
from lungprior.predict.page import write_index
from lungprior.predict.pipeline import COLUMNS


def test_the_page_names_each_findings_calibration_with_no_film_scored(tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    out.mkdir()
    params = {k: {"method": "platt", "a": 0.9, "b": -1.0, "n_pos": 20, "n_neg": 80, "reason": ""} for k in FINDINGS}
    params["Nodule"] = {"method": "raw", "n_pos": 2, "n_neg": 98,
                        "reason": "raw scores: 2 validation films with the finding (needs ≥ 5 with and ≥ 5 without)"}
    (run / "calibration.json").write_text(json.dumps({"method": "platt", "fitted_on": "val", "params": params}))
    (out / "predict.json").write_text(json.dumps({"run": str(run), "calibrated": True}))
    empty = pd.DataFrame(columns=COLUMNS)
    page = write_index(out, empty, pd.DataFrame(columns=["image_id", "path", "reason"]), "batch").read_text()
    assert "0 film(s) scored" in page and "uncalibrated" not in page
    assert "<li>Mass: calibrated (Platt, fitted on val, slope 0.9)</li>" in page
    assert "<li>Nodule: raw scores: 2 validation films with the finding" in page
    (run / "calibration.json").unlink()
    page = write_index(out, empty, pd.DataFrame(columns=["image_id", "path", "reason"]), "batch").read_text()
    assert "<li>Mass: raw: the run has no calibration.json</li>" in page
