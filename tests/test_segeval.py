"""Tests for `lungprior.segment.segeval` and `lungprior segeval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage as ndi
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.segment.segeval import evaluate_segmentations, filled_panel, film_metrics, midline

H, W = 64, 128


def lungs(shift: int = 0, *, left: bool = True) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:50, 10 + shift : 50 + shift] = True  # image left = patient's right lung
    if left:
        m[12:52, 78 + shift : 118 + shift] = True
    return m


def surface_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent reference: distances from a's border pixels to b's border pixels and back (pixels)."""
    def border(m: np.ndarray) -> np.ndarray:
        return m & ~ndi.binary_erosion(m)
    da = ndi.distance_transform_edt(~border(b))[border(a)]
    db = ndi.distance_transform_edt(~border(a))[border(b)]
    return np.concatenate([da, db])


def test_dice_iou_and_distances_match_a_reference() -> None:
    truth, pred = lungs(), lungs(3)
    row = film_metrics(pred, truth, spacing_mm=0.5)
    inter, total = (pred & truth).sum(), pred.sum() + truth.sum()
    assert row["dice"] == pytest.approx(2 * inter / total)
    assert row["iou"] == pytest.approx(inter / (pred | truth).sum())
    ref = surface_distances(pred, truth)
    assert row["unit"] == "mm"
    assert row["msd"] == pytest.approx(0.5 * ref.mean(), rel=0.05)
    assert row["hd95"] == pytest.approx(0.5 * 3.0, abs=0.5)  # a 3-pixel shift, 0.5 mm pixels


def test_unknown_spacing_is_pixels_at_1024_on_the_long_side() -> None:
    row = film_metrics(lungs(3), lungs())
    assert row["unit"] == "px@1024"
    assert row["hd95"] == pytest.approx(3.0 * 1024 / W, abs=1024 / W)


def test_ignore_pixels_count_neither_way_and_per_lung_dice() -> None:
    truth = lungs()
    pred = lungs(left=False)
    row = film_metrics(pred, truth)
    assert row["dice_right"] == pytest.approx(1.0) and row["dice_left"] == pytest.approx(0.0)
    ignore = np.zeros_like(truth)
    ignore[:, W // 2 :] = True  # the missed lung is not annotated: nothing is wrong any more
    assert film_metrics(pred, truth, ignore)["dice"] == pytest.approx(1.0)
    assert 50 <= midline(truth) <= 78


def test_empty_prediction_scores_the_diagonal() -> None:
    row = film_metrics(np.zeros((H, W), bool), lungs(), spacing_mm=1.0)
    assert row["dice"] == 0.0 and row["hd95"] == pytest.approx(np.hypot(H, W))


def _run(tmp_path: Path) -> tuple[Path, Path]:
    rows = []
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    (tmp_path / "run" / "masks").mkdir(parents=True)
    qc = []
    for k, shift in enumerate([0, 2, 20, 40]):
        image_id = f"f{k}.png"
        film = (np.random.default_rng(k).random((H, W)) * 255).astype(np.uint8)
        Image.fromarray(film).save(tmp_path / "img" / image_id)
        Image.fromarray(lungs().astype(np.uint8) * 255).save(tmp_path / "gt" / f"f{k}.png")
        Image.fromarray(lungs(shift).astype(np.uint8) * 255).save(tmp_path / "run" / "masks" / f"f{k}.png")
        rows.append({"image_id": image_id, "path": f"img/{image_id}", "mask_path": f"gt/f{k}.png", "split": "test",
                     "pixel_spacing_mm": "", "view": "PA" if k < 3 else "AP"})
        qc.append({"image_id": image_id, "flag": "implausible" if k == 3 else "ok", "reason": "x" if k == 3 else ""})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    pd.DataFrame(qc).to_csv(tmp_path / "run" / "qc.csv", index=False)
    return tmp_path / "manifest.csv", tmp_path / "run"


def test_evaluate_writes_films_summary_and_gallery(tmp_path: Path) -> None:
    manifest, run = _run(tmp_path)
    result = evaluate_segmentations(manifest, run, tmp_path / "eval", worst=2)
    films = pd.read_csv(tmp_path / "eval" / "films.csv")
    assert films["image_id"].tolist() == ["f0.png", "f1.png", "f2.png", "f3.png"]
    assert films["dice"].iloc[0] == pytest.approx(1.0) and films["dice"].is_monotonic_decreasing
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert [w["image_id"] for w in summary["worst"]] == ["f3.png", "f2.png"]
    assert summary["by_view"]["AP"]["n"] == 1 and summary["by_view"]["PA"]["n"] == 3
    bad = int((films["dice"] < 0.85).sum())
    assert summary["qc"] == {"bad_films (dice<0.85)": bad, "bad_flagged": 1, "good_films": 4 - bad, "good_flagged": 0}
    assert result.summary["all"]["dice"]["median"] == pytest.approx(films["dice"].median())
    gallery = np.asarray(Image.open(tmp_path / "eval" / "worst.png").convert("RGB")).astype(int)
    tile = gallery[:320, 324:644]  # the first film's filled panel, beside its outlines
    red = (tile[..., 0] - tile[..., 1]) > 60
    assert 0.05 < red.mean() < 0.6  # the prediction filled, not only drawn around


def test_filled_panel_fills_the_prediction_only() -> None:
    image = np.full((H, W), 0.5, np.float32)
    pred = lungs()
    panel = filled_panel(image, pred, side=max(H, W)).astype(int)
    inside = panel[pred]
    assert (inside[:, 0] > inside[:, 1] + 60).all() and (panel[~pred] == 128).all()


def test_cli_segeval_and_a_clear_error(tmp_path: Path) -> None:
    manifest, run = _run(tmp_path)
    ok = CliRunner().invoke(app, ["segeval", "--manifest", str(manifest), "--pred", str(run),
                                  "--out", str(tmp_path / "e"), "--gt", str(tmp_path / "gt")])
    assert ok.exit_code == 0, ok.output
    assert "films scored: 4" in ok.output and "QC flags" in ok.output
    bad = CliRunner().invoke(app, ["segeval", "--manifest", str(manifest), "--pred", str(tmp_path / "nope"),
                                   "--out", str(tmp_path / "e2")])
    assert bad.exit_code == 2 and "--pred" in bad.output
