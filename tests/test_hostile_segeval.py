"""`segeval` scoring against hostile inputs: all-ignore ground truth, repeated and path-like ids, bad --worst."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.errors import LungpriorError
from lungprior.layout import mask_name
from lungprior.segment.segeval import evaluate_segmentations


def _case(tmp_path: Path, ids: list[str], all_ignore: set[str]) -> tuple[Path, Path]:
    lung = np.zeros((32, 32), np.uint8)
    lung[4:28, 4:14] = lung[4:28, 18:28] = 255
    (tmp_path / "gt").mkdir()
    (tmp_path / "run" / "masks").mkdir(parents=True)
    rows = []
    for k, image_id in enumerate(ids):
        gt = np.full((32, 32), 127, np.uint8) if image_id in all_ignore else lung
        Image.fromarray(gt).save(tmp_path / "gt" / f"g{k}.png")
        Image.fromarray(np.roll(lung, k, axis=1)).save(tmp_path / "run" / "masks" / mask_name(image_id))
        rows.append({"image_id": image_id, "path": "x.png", "mask_path": f"gt/g{k}.png", "view": "PA"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv", tmp_path / "run"


def test_all_ignore_truth_is_not_scored_and_repeated_ids_count_once(tmp_path: Path) -> None:
    manifest, run = _case(tmp_path, ["a", "blank", "a", "../x"], {"blank"})
    result = evaluate_segmentations(manifest, run, tmp_path / "eval", gallery=False)
    assert result.films["image_id"].tolist() == ["a", "../x"]  # not Dice 1.0 for "blank"; "a" once
    reasons = {m["image_id"]: m["reason"] for m in result.summary["not_scored"]}
    assert "every pixel is ignore" in reasons["blank"] and "scored once" in reasons["a"]
    assert result.summary["all"]["n"] == 2


def test_negative_worst_is_refused(tmp_path: Path) -> None:
    manifest, run = _case(tmp_path, ["a"], set())
    with pytest.raises(LungpriorError, match="--worst"):
        evaluate_segmentations(manifest, run, tmp_path / "eval", worst=-2)
