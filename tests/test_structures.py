"""Tests for the structure-CSV importer (`lungprior.data.structures`) and the 127-means-ignore masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from real_data import shared_data
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.ignore import read_mask_ignore
from lungprior.data.io import read_mask
from lungprior.data.manifest import read_seg_manifest, resolve
from lungprior.data.segdata import build_segdata
from lungprior.data.structures import build_structure_segdata, paste, read_crop
from lungprior.errors import LungpriorError

REAL = shared_data("covid-lung-seg-dev") or Path("/nonexistent")
H, W = 40, 50


def _crop(path: Path, region: np.ndarray, kind: str) -> None:
    """Write a crop of a bool region in one of the published encodings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = region.shape
    if kind == "rgba":
        arr = np.zeros((h, w, 4), np.uint8)
        arr[..., 3] = 255  # opaque everywhere: the structure is where the colour is
        arr[region, 0], arr[region, 1], arr[region, 2] = 187, 73, 73
        Image.fromarray(arr, "RGBA").save(path)
    elif kind == "rgb":
        arr = np.zeros((h, w, 3), np.uint8)
        arr[region, 0] = 255
        Image.fromarray(arr, "RGB").save(path)
    elif kind == "palette":
        im = Image.fromarray(region.astype(np.uint8), "L").convert("P")
        im.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
        im.save(path)
    elif kind == "gray16":
        Image.fromarray(region.astype(np.uint16) * 40000).save(path)
    else:
        raise ValueError(kind)


def make_dataset(root: Path, films: dict[str, dict], *, metadata: dict[str, tuple[str, str]] | None = None) -> Path:
    """films: name -> {"lungs": [(side, top, left, h, w, kind)], "mode": image mode}; returns structure.csv."""
    rows = []
    rng = np.random.default_rng(0)
    for n, (film, spec) in enumerate(films.items()):
        shape = spec.get("shape", (H, W))
        image = (rng.random(shape) * 255).astype(np.uint8)
        mode = spec.get("mode", "L")
        (root / "images").mkdir(parents=True, exist_ok=True)
        pic = Image.fromarray(image)
        pic = pic.convert(mode) if mode != "L" else pic
        pic.save(root / "images" / film)
        for k, (side, top, left, h, w, kind) in enumerate(spec["lungs"]):
            region = np.zeros((h, w), bool)
            region[1:-1, 1:-1] = True
            mask = f"masks/{n}_{k}.png"
            _crop(root / mask, region, kind)
            rows.append({"Template Name": side, "Filename": film, "Mask": mask, "Top": top, "Left": left,
                         "Width": w, "Height": h, "Resolution": f"{shape[1]}x{shape[0]}"})
        rows.append({"Template Name": "Monitoring Probes", "Filename": film, "Mask": "", "Top": 0, "Left": 0,
                     "Width": 1, "Height": 1, "Resolution": f"{shape[1]}x{shape[0]}"})
    pd.DataFrame(rows).to_csv(root / "structure.csv", index=False)
    if metadata is not None:
        meta = [{"patientid": p, "filename": f, "view": v} for f, (p, v) in metadata.items()]
        pd.DataFrame(meta).to_csv(root / "metadata.csv", index=False)
    return root / "structure.csv"


def both(kind_r: str = "rgba", kind_l: str = "rgba") -> list[tuple]:
    return [("Right Lung", 4, 3, 30, 18, kind_r), ("Left Lung", 5, 28, 28, 19, kind_l)]


def test_paste_places_and_cuts_at_the_border() -> None:
    crop = np.ones((4, 5), bool)
    out = paste(crop, 2, 47, (H, W))
    assert out.sum() == 4 * 3 and out[2:6, 47:].all()
    assert not paste(crop, 100, 0, (H, W)).any()


@pytest.mark.parametrize("kind", ["rgba", "rgb", "palette", "gray16"])
def test_crop_encodings_read_as_the_region(tmp_path: Path, kind: str) -> None:
    region = np.zeros((7, 9), bool)
    region[2:5, 3:8] = True
    _crop(tmp_path / "c.png", region, kind)
    assert np.array_equal(read_crop(tmp_path / "c.png"), region)


def test_lungs_are_pasted_united_and_split_by_patient(tmp_path: Path) -> None:
    films = {
        "a.jpg": {"lungs": both("rgba", "rgb"), "mode": "RGB"},
        "b.png": {"lungs": both("palette", "gray16"), "mode": "RGBA"},
        "c.png": {"lungs": [*both(), ("Right Lung", 30, 1, 8, 6, "rgba")], "shape": (H, W)},
        "d.png": {"lungs": both()},
        "e.png": {"lungs": both()},
        "f.png": {"lungs": both()},
    }
    meta = {"a.jpg": ("p1", "PA"), "b.png": ("p1", "AP"), "c.png": ("p2", "PA"), "d.png": ("p2", "PA"),
            "e.png": ("p3", "PA"), "f.png": ("p4", "PA")}
    csv = make_dataset(tmp_path / "ds", films, metadata=meta)
    result = build_structure_segdata(csv, out_dir=tmp_path / "out", val_fraction=0.25, test_fraction=0.25, seed=3)
    df = read_seg_manifest(result.manifest_path)
    assert sorted(df["image_id"]) == ["a", "b", "c", "d", "e", "f"]
    assert df.groupby("patient_id")["split"].nunique().max() == 1  # patient-disjoint
    assert dict(zip(df["image_id"], df["view"], strict=True))["b"] == "AP"
    for _, row in df.iterrows():
        mask = read_mask(resolve(df, row["mask_path"]))
        assert mask.shape == (H, W)
        expected = np.zeros((H, W), bool)
        expected[5:33, 4:20] = True  # right lung crop interior (top 4, left 3, 30 x 18)
        expected[6:32, 29:46] = True  # left lung crop interior (top 5, left 28, 28 x 19)
        if row["image_id"] == "c":
            expected[31:37, 2:6] = True  # the second right-lung mask is united
        assert np.array_equal(mask, expected), row["image_id"]
    assert any("several masks" in w["message"] for w in result.summary["warnings"])


def test_missing_side_is_excluded_with_reason_and_other_structures_written(tmp_path: Path) -> None:
    films = {
        "half.png": {"lungs": [("Right Lung", 4, 3, 30, 18, "rgba")]},
        "full.png": {"lungs": [*both(), ("Consolidation", 10, 5, 6, 6, "rgba")]},
    }
    csv = make_dataset(tmp_path / "ds", films)
    result = build_structure_segdata(
        csv, out_dir=tmp_path / "out", structures=("Consolidation",), val_fraction=0.0, test_fraction=0.0
    )
    assert result.manifest["image_id"].tolist() == ["full"]
    (item,) = result.summary["excluded"]
    assert item["item"] == "half" and "Left Lung" in item["reason"] and item["kind"] == "missing lung side"
    cons = read_mask(tmp_path / "out" / "structures" / "consolidation" / "full.png")
    assert cons.sum() == 16
    # without metadata.csv every film is its own patient
    assert result.manifest["patient_id"].tolist() == ["full"]


def test_max_side_downsizes_films_and_masks(tmp_path: Path) -> None:
    films = {"big.png": {"lungs": [("Right Lung", 8, 6, 60, 36, "rgba"), ("Left Lung", 10, 56, 56, 38, "rgba")],
                         "shape": (80, 100)}}
    csv = make_dataset(tmp_path / "ds", films)
    build_structure_segdata(csv, out_dir=tmp_path / "out", max_side=50, val_fraction=0, test_fraction=0)
    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)  # self-contained: paths are relative to the folder
    df = read_seg_manifest(moved / "manifest.csv")
    assert df["path"][0] == "images/big.png"
    image = Image.open(resolve(df, df["path"][0]))
    assert image.size == (50, 40)
    assert read_mask(resolve(df, df["mask_path"][0])).shape == (40, 50)


def test_not_a_structure_csv_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    pd.DataFrame({"image": ["x"], "mask": ["y"]}).to_csv(tmp_path / "structure.csv", index=False)
    with pytest.raises(LungpriorError, match="missing column"):
        build_structure_segdata(tmp_path / "structure.csv", out_dir=tmp_path / "out")


def test_cli_structure_csv(tmp_path: Path) -> None:
    csv = make_dataset(tmp_path / "ds", {"a.png": {"lungs": both()}, "b.png": {"lungs": both()}})
    result = CliRunner().invoke(app, ["segdata", "--structure-csv", str(csv), "--out", str(tmp_path / "o"),
                                      "--val-fraction", "0", "--test-fraction", "0"])
    assert result.exit_code == 0, result.output
    assert "kept: 2" in result.output
    bad = CliRunner().invoke(app, ["segdata", "--structure-csv", str(csv), "--masks", str(tmp_path),
                                   "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "--structure-csv" in bad.output


def test_grey_127_is_kept_as_ignore_in_folder_pairs(tmp_path: Path) -> None:
    images, masks = tmp_path / "img", tmp_path / "msk"
    images.mkdir(), masks.mkdir()
    Image.fromarray(np.full((12, 10), 90, np.uint8)).save(images / "x.png")
    raw = np.zeros((12, 10), np.uint8)
    raw[2:10, 1:4] = 255
    raw[2:10, 6:9] = 127
    Image.fromarray(raw).save(masks / "x.png")
    result = build_segdata(images, masks, out_dir=tmp_path / "out", val_fraction=0, test_fraction=0)
    df = read_seg_manifest(result.manifest_path)
    lung, ignore = read_mask_ignore(resolve(df, df["mask_path"][0]))
    assert lung.sum() == 24 and ignore.sum() == 24 and not (lung & ignore).any()
    assert any("ignore" in w["message"] for w in result.summary["warnings"])
    # a soft mask with many grey levels is not an ignore mask
    soft = np.arange(120, dtype=np.uint8).reshape(12, 10) * 2
    Image.fromarray(soft).save(tmp_path / "soft.png")
    lung, ignore = read_mask_ignore(tmp_path / "soft.png")
    assert not ignore.any() and lung.sum() == int((soft >= 128).sum())


@pytest.mark.skipif(not (REAL / "structure.csv").is_file(), reason="../shared/data/covid-lung-seg-dev not present")
def test_real_dataset_imports_patient_disjoint(tmp_path: Path) -> None:
    result = build_structure_segdata(REAL / "structure.csv", out_dir=tmp_path / "out", max_side=256)
    df = result.manifest
    assert len(df) == 58 and df["patient_id"].nunique() == 42
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    summary = json.loads(result.summary_path.read_text())
    assert summary["excluded_count"] == 0
    fractions = [read_mask(resolve(read_seg_manifest(result.manifest_path), p)).mean() for p in df["mask_path"]]
    assert 0.1 < float(np.median(fractions)) < 0.6
