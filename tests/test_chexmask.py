"""CheXmask tables -> lungprior masks (RLE as CheXmask decodes it, RCA filter, exclusions, resume), segeval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.chexmask import RleError, convert_chexmask, decode_rle
from lungprior.data.io import read_mask, write_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.runner import segmentation_stage
from lungprior.experiment.stages import StageOutcome
from lungprior.segment.segeval import evaluate_segmentations

SCALE = 2  # the tables hold masks at twice the stored films' size


def encode(mask: np.ndarray) -> str:
    """CheXmask's encoding, written here from its definition: 1-based starts and lengths of the runs of ones
    in the row-major flattened mask."""
    flat = mask.astype(np.int8).ravel()
    padded = np.concatenate([[0], flat, [0]])
    edges = np.flatnonzero(np.diff(padded)) + 1  # 1-based start of each run, then 1-based first pixel after it
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends, strict=True))


def test_decode_a_hand_made_code() -> None:
    # 3 x 4 mask with pixels (0,1), (0,2), (1,3), (2,0): flat indices 1, 2, 7, 8 -> runs (2, 2) and (8, 2)
    expected = np.zeros((3, 4), dtype=bool)
    expected[0, 1] = expected[0, 2] = expected[1, 3] = expected[2, 0] = True
    np.testing.assert_array_equal(decode_rle("2 2 8 2", 3, 4), expected)
    assert encode(expected) == "2 2 8 2"
    assert not decode_rle("", 3, 4).any() and not decode_rle(float("nan"), 3, 4).any()
    full = decode_rle("1 12", 3, 4)
    assert full.all()


def test_random_masks_round_trip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((17, 23)) > rng.random()
        np.testing.assert_array_equal(decode_rle(encode(mask), 17, 23), mask)


@pytest.mark.parametrize("code, message", [
    ("1 2 3", "odd number"), ("a 2", "integers"), ("10 5", "past"), ("0 3", "below 1"), ("3 -1", "negative"),
])
def test_malformed_codes_are_refused(code: str, message: str) -> None:
    with pytest.raises(RleError, match=message):
        decode_rle(code, 3, 4)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=12, size=64, seed=2), out, workers=1, progress=False)
    return out


def _upscaled(mask: np.ndarray) -> np.ndarray:
    return np.kron(mask.astype(np.uint8), np.ones((SCALE, SCALE), dtype=np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def table(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CheXmask-format table: every film but the last, a low-RCA row, a malformed row, an unknown id."""
    ids = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()
    rows = []
    for k, image_id in enumerate(ids[:-1]):
        lungs = _upscaled(read_mask(bench / "masks" / f"{image_id}.png"))
        h, w = lungs.shape
        right, left = lungs.copy(), lungs.copy()
        right[:, w // 2 :] = False
        left[:, : w // 2] = False
        heart = np.zeros_like(lungs)
        heart[h // 2 : h // 2 + 10, w // 2 - 8 : w // 2 + 8] = True
        rows.append({"Image ID": f"{image_id}.png", "Dice RCA (Mean)": 0.5 if k == 1 else 0.9,
                     "Dice RCA (Max)": 0.95, "Landmarks": "[]", "Left Lung": encode(left),
                     "Right Lung": "5 7 9" if k == 2 else encode(right), "Heart": encode(heart),
                     "Height": h, "Width": w})
    rows.append({**rows[0], "Image ID": "99999999_000.png"})
    path = tmp_path_factory.mktemp("chexmask") / "ChestX-Ray8.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_convert_writes_masks_at_film_size_and_lists_exclusions(bench: Path, table: Path, tmp_path: Path) -> None:
    out = tmp_path / "cm"
    result = CliRunner().invoke(app, ["chexmask", "--csv", str(table), "--manifest", str(bench / "manifest.csv"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()
    excluded = pd.read_csv(out / "excluded.csv", dtype=str).set_index("image_id")["reason"].to_dict()
    assert set(excluded) == {ids[1], ids[2], ids[-1], "99999999_000.png"}
    assert "0.500 < 0.7" in excluded[ids[1]] and "odd number" in excluded[ids[2]]
    assert excluded[ids[-1]] == "no CheXmask row" and excluded["99999999_000.png"] == "not in the manifest"
    for image_id in ids:
        written = out / "masks" / f"{image_id}.png"
        assert written.is_file() == (image_id not in excluded)
        if written.is_file():
            np.testing.assert_array_equal(read_mask(written), read_mask(bench / "masks" / f"{image_id}.png"))
            assert Image.open(out / "heart" / f"{image_id}.png").size == (64, 64)
    record = json.loads((out / "chexmask.json").read_text())
    assert record["min_rca"] == 0.7 and record["masks"] == len(ids) - 3
    again = convert_chexmask(table, bench / "manifest.csv", out)
    assert again.written == 0 and again.skipped == len(ids) - 3
    looser = convert_chexmask(table, bench / "manifest.csv", tmp_path / "loose", min_rca=0.4)
    assert looser.written == len(ids) - 2


def test_bad_tables_are_one_line_errors(bench: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Image ID,Left Lung\nx.png,1 2\n")
    with pytest.raises(LungpriorError, match="missing columns"):
        convert_chexmask(bad, bench / "manifest.csv", tmp_path / "o")
    with pytest.raises(LungpriorError, match="not found"):
        convert_chexmask(tmp_path / "none.csv", bench / "manifest.csv", tmp_path / "o")


def test_segeval_scores_masks_against_chexmask(bench: Path, table: Path, tmp_path: Path) -> None:
    """`segeval --gt CHEXMASK/masks` compares another mask set with CheXmask's (films without one not scored)."""
    convert_chexmask(table, bench / "manifest.csv", tmp_path / "cm")
    shrunk = tmp_path / "shrunk"
    ids = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()
    for image_id in ids:
        lungs = read_mask(bench / "masks" / f"{image_id}.png")
        write_mask(shrunk / f"{image_id}.png", binary_erosion(lungs, iterations=2))
    gt = tmp_path / "cm" / "masks"
    same = evaluate_segmentations(bench / "manifest.csv", bench / "masks", tmp_path / "same", gt=gt, gallery=False)
    assert same.summary["all"]["n"] == len(ids) - 3 and same.summary["all"]["dice"]["mean"] == 1.0
    assert len(same.summary["not_scored"]) == 3
    worse = evaluate_segmentations(bench / "manifest.csv", shrunk, tmp_path / "worse", gt=gt, gallery=False)
    assert 0.5 < worse.summary["all"]["dice"]["mean"] < 1.0
    result = CliRunner().invoke(app, ["segeval", "--manifest", str(bench / "manifest.csv"), "--pred", str(shrunk),
                                      "--gt", str(gt), "--out", str(tmp_path / "agree")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "agree" / "films.csv")) == len(ids) - 3


def test_experiment_takes_chexmask_as_its_segmentation(bench: Path, table: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file"):
        ExperimentConfig.model_validate({"segmentation": {"source": "chexmask"}})
    cfg = ExperimentConfig.model_validate({
        "dataset": {"kind": "manifest", "manifest": str(bench / "manifest.csv")},
        "segmentation": {"source": "chexmask", "file": str(table)},
    })
    data = StageOutcome("data", tmp_path / "data", "h", False, {"manifest": str(bench / "manifest.csv")})
    seg = segmentation_stage(cfg, tmp_path, data)
    kept = pd.read_csv(seg.record["manifest"], dtype={"image_id": str})
    assert len(kept) == 12 - 3 and all(Path(p).is_file() for p in kept["path"])
    assert Path(seg.record["masks_dir"]).is_dir() and seg.record["excluded"] == 4
    assert segmentation_stage(cfg, tmp_path, data).ran is False
