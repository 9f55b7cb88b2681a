"""Tests for lungprior.data.segdata and `lungprior segdata`: pairing, validation, merging, splits, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicomfiles import make_dicom
from PIL import Image
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.io import read_mask
from lungprior.data.manifest import SEG_COLUMNS, read_seg_manifest, resolve
from lungprior.data.segdata import build_segdata, mask_key
from lungprior.errors import LungpriorError

H, W = 12, 10


def lung_mask(shift: int = 0) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[2:10, 1 + shift : 4 + shift] = 255
    return mask


def write_image(path: Path, value: int = 100, shape: tuple[int, int] = (H, W)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def write_raw_mask(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_dicom(path: Path, spacing: str = "0.5") -> Path:
    return make_dicom(path, np.arange(H * W, dtype=np.uint16).reshape(H, W), PixelSpacing=[spacing, spacing])


def simple_dataset(root: Path, n: int) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    for i in range(n):
        write_image(images / f"img{i:03d}.png", value=i)
        write_raw_mask(masks / f"img{i:03d}_mask.png", lung_mask(i % 3))
    return images, masks


def excluded_kinds(summary: dict) -> dict[str, str]:
    return {e["item"]: e["kind"] for e in summary["excluded"]}


def test_mask_key_strips_one_known_suffix() -> None:
    assert mask_key("CHNCXR_0001_0_mask") == "chncxr_0001_0"
    assert mask_key("Case7-MASK") == "case7"
    assert mask_key("p1_lungs") == "p1" and mask_key("p1_seg") == "p1"
    assert mask_key("mask") == "mask" and mask_key("p1") == "p1"


def test_pairs_by_stem_with_suffixes_and_extensions(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.png")
    write_image(images / "B.jpg")
    write_image(images / "case_lung.png")
    write_dicom(images / "d.dcm", spacing="0.4")
    write_raw_mask(masks / "a_mask.png", lung_mask())
    write_raw_mask(masks / "b-MASK.png", lung_mask())
    write_raw_mask(masks / "case_lung_seg.tif", lung_mask())
    write_raw_mask(masks / "D_lungs.png", lung_mask())
    result = build_segdata(images, masks, out_dir=tmp_path / "out", val_fraction=0.25, test_fraction=0.25)
    df = result.manifest
    assert list(df.columns) == list(SEG_COLUMNS)
    assert df["image_id"].tolist() == ["B", "a", "case_lung", "d"]
    by_id = df.set_index("image_id")
    assert by_id.loc["a", "mask_path"] == str((masks / "a_mask.png").resolve())
    assert by_id.loc["case_lung", "mask_path"].endswith("case_lung_seg.tif")
    assert by_id.loc["d", "pixel_spacing_mm"] == pytest.approx(0.4) and np.isnan(by_id.loc["a", "pixel_spacing_mm"])
    assert all(Path(p).is_absolute() for p in df["path"])
    assert sorted(df["split"]) == ["test", "train", "train", "val"]
    on_disk = read_seg_manifest(tmp_path / "out" / "manifest.csv")
    assert on_disk["image_id"].tolist() == df["image_id"].tolist()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"train": 2, "val": 1, "test": 1, "total": 4}
    assert summary["excluded"] == [] and summary["warnings"] == []


def test_missing_partners_are_excluded_with_reasons(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 3)
    write_image(images / "lonely.png")
    write_raw_mask(masks / "orphan_mask.png", lung_mask())
    result = build_segdata(images, masks, out_dir=tmp_path / "out")
    assert result.manifest["image_id"].tolist() == ["img000", "img001", "img002"]
    kinds = excluded_kinds(result.summary)
    assert kinds == {"lonely": "image without mask", "orphan_mask": "mask without image"}
    saved = json.loads(result.summary_path.read_text())
    assert saved["excluded_count"] == 2
    assert saved["excluded_by_kind"] == {"image without mask": 1, "mask without image": 1}
    assert all(e["reason"].startswith(e["kind"]) for e in saved["excluded"])


def test_size_mismatch_empty_and_unreadable_are_excluded(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 2)
    write_image(images / "big.png", shape=(H + 2, W))
    write_raw_mask(masks / "big_mask.png", lung_mask())
    write_image(images / "blank.png")
    write_raw_mask(masks / "blank_mask.png", np.zeros((H, W), np.uint8))
    write_image(images / "zeroone.png")
    write_raw_mask(masks / "zeroone_mask.png", (lung_mask() > 0).astype(np.uint8))
    (images / "broken.png").write_bytes((images / "img000.png").read_bytes()[:40])
    write_raw_mask(masks / "broken_mask.png", lung_mask())
    write_image(images / "badmask.png")
    (masks / "badmask_mask.png").write_bytes(b"")
    result = build_segdata(images, masks, out_dir=tmp_path / "out")
    assert result.manifest["image_id"].tolist() == ["img000", "img001"]
    reasons = {e["item"]: e["reason"] for e in result.summary["excluded"]}
    assert reasons["big"] == "size mismatch: mask big_mask.png is 12x10 (HxW), image big.png is 14x10"
    assert reasons["blank"] == "empty mask: no pixel >= 128"
    assert reasons["zeroone"] == "empty mask: no pixel >= 128; values are at most 1, is it a 0/1 mask?"
    assert reasons["broken"].startswith("unreadable image: corrupt or truncated PNG")
    assert reasons["badmask"] == "unreadable mask: empty file (0 bytes)"


def test_non_binary_mask_is_thresholded_written_and_warned(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 2)
    soft = lung_mask().astype(np.float64) * 0.6  # 0 and 153
    soft[0, 0] = 127  # just below the threshold
    soft[11, 9] = 128  # at the threshold
    write_image(images / "soft.png")
    write_raw_mask(masks / "soft_mask.png", soft.astype(np.uint8))
    out = tmp_path / "out"
    result = build_segdata(images, masks, out_dir=out)
    row = result.manifest.set_index("image_id").loc["soft"]
    assert row["mask_path"] == "masks/soft.png"
    written = resolve(read_seg_manifest(out / "manifest.csv"), row["mask_path"])
    assert written == out / "masks" / "soft.png"
    with Image.open(written) as im:
        assert sorted(np.unique(np.asarray(im)).tolist()) == [0, 255]
    np.testing.assert_array_equal(read_mask(written), soft >= 128)
    assert result.summary["warnings"] == [
        {"image_id": "soft", "message": "soft_mask.png: non-binary mask (values 127, 128, 153) thresholded at 128"}
    ]
    assert result.summary["masks_written"] == 1 and result.summary["excluded"] == []


def test_left_right_masks_are_merged(tmp_path: Path) -> None:
    images, left, right = tmp_path / "CXR_png", tmp_path / "leftMask", tmp_path / "rightMask"
    for name in ("MCUCXR_0001_0", "MCUCXR_0002_1", "MCUCXR_0003_0"):
        write_image(images / f"{name}.png")
    right_arr, left_arr = lung_mask(0), lung_mask(5)
    for name in ("MCUCXR_0001_0", "MCUCXR_0002_1"):
        write_raw_mask(right / f"{name}.png", right_arr)
        write_raw_mask(left / f"{name}.png", left_arr)
    write_raw_mask(right / "MCUCXR_0003_0.png", right_arr)  # its left mask is missing
    out = tmp_path / "out"
    result = build_segdata(images, left_dir=left, right_dir=right, out_dir=out, val_fraction=0, test_fraction=0)
    assert result.manifest["image_id"].tolist() == ["MCUCXR_0001_0", "MCUCXR_0002_1"]
    assert result.manifest["mask_path"].tolist() == ["masks/MCUCXR_0001_0.png", "masks/MCUCXR_0002_1.png"]
    merged = read_mask(out / "masks" / "MCUCXR_0001_0.png")
    np.testing.assert_array_equal(merged, (right_arr > 0) | (left_arr > 0))
    assert merged.sum() == (right_arr > 0).sum() + (left_arr > 0).sum()  # disjoint lungs, both kept
    assert excluded_kinds(result.summary) == {"MCUCXR_0003_0": "image without left mask"}
    assert set(result.manifest["split"]) == {"train"}


def test_pairs_csv_relative_absolute_and_bad_rows(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 3)
    other = write_raw_mask(tmp_path / "elsewhere" / "any_name.png", lung_mask(1))
    csv = tmp_path / "pairs.csv"
    pd.DataFrame(
        {
            "image": ["img000.png", str((images / "img001.png").resolve()), "img002.png", "nope.png", ""],
            "mask": ["img000_mask.png", str(other), "missing.png", "img000_mask.png", "img001_mask.png"],
        }
    ).to_csv(csv, index=False)
    result = build_segdata(images, masks, pairs_csv=csv, out_dir=tmp_path / "out")
    by_id = result.manifest.set_index("image_id")
    assert by_id.index.tolist() == ["img000", "img001"]
    assert by_id.loc["img001", "mask_path"] == str(other.resolve())
    assert excluded_kinds(result.summary) == {
        "img002": "image without mask", "nope": "mask without image", "pairs.csv row 6": "mask without image",
    }


def test_pairs_csv_needs_columns(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 1)
    (tmp_path / "bad.csv").write_text("img,msk\na.png,b.png\n")
    with pytest.raises(LungpriorError, match="needs columns 'image' and 'mask'"):
        build_segdata(images, masks, pairs_csv=tmp_path / "bad.csv", out_dir=tmp_path / "out")


def test_images_and_masks_in_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    for i in range(3):
        write_image(folder / f"CHNCXR_{i:04d}_0.png")
        write_raw_mask(folder / f"CHNCXR_{i:04d}_0_mask.png", lung_mask(i))
    result = build_segdata(folder, folder, out_dir=tmp_path / "out")
    df = result.manifest
    assert df["image_id"].tolist() == ["CHNCXR_0000_0", "CHNCXR_0001_0", "CHNCXR_0002_0"]
    assert all(m.endswith("_mask.png") for m in df["mask_path"]) and result.summary["excluded"] == []


def test_ambiguous_names_are_excluded(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 2)
    write_image(images / "dup.png")
    write_image(images / "DUP.jpg")
    write_raw_mask(masks / "dup_mask.png", lung_mask())
    write_raw_mask(masks / "img001.png", lung_mask())  # img001 now has two candidate masks
    result = build_segdata(images, masks, out_dir=tmp_path / "out")
    assert result.manifest["image_id"].tolist() == ["img000"]
    assert excluded_kinds(result.summary) == {
        "dup": "ambiguous image", "DUP": "ambiguous image", "img001": "ambiguous mask",
    }


def test_splits_are_deterministic_and_follow_fractions(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 40)
    kwargs = {"val_fraction": 0.2, "test_fraction": 0.1}
    first = build_segdata(images, masks, out_dir=tmp_path / "o1", seed=3, **kwargs)
    again = build_segdata(images, masks, out_dir=tmp_path / "o2", seed=3, **kwargs)
    other = build_segdata(images, masks, out_dir=tmp_path / "o3", seed=4, **kwargs)
    assert (tmp_path / "o1" / "manifest.csv").read_bytes() == (tmp_path / "o2" / "manifest.csv").read_bytes()
    assert first.manifest["split"].value_counts().to_dict() == {"train": 28, "val": 8, "test": 4}
    assert first.summary["counts"] == {"train": 28, "val": 8, "test": 4, "total": 40}
    assert first.manifest["split"].tolist() != other.manifest["split"].tolist()
    pd.testing.assert_frame_equal(first.manifest, again.manifest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images_dir": "missing", "masks_dir": "masks"}, "--images .*missing: folder not found"),
        ({"images_dir": "images", "masks_dir": "missing"}, "--masks .*missing: folder not found"),
        ({"images_dir": "empty", "masks_dir": "masks"}, "no image files for --images"),
        ({"images_dir": "images"}, "no masks: give --masks"),
        ({"images_dir": "images", "left_dir": "masks"}, "must be given together"),
        ({"images_dir": "images", "masks_dir": "masks", "left_dir": "masks", "right_dir": "masks"}, "not both"),
        ({"images_dir": "images", "masks_dir": "masks", "val_fraction": 1.0}, r"--val-fraction must be in \[0, 1\)"),
        ({"images_dir": "images", "masks_dir": "masks", "test_fraction": -0.1}, "--test-fraction must be"),
        ({"images_dir": "images", "masks_dir": "masks", "val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    simple_dataset(tmp_path, 2)
    (tmp_path / "empty").mkdir()
    args = {k: (tmp_path / v if k.endswith("dir") else v) for k, v in kwargs.items()}
    with pytest.raises(LungpriorError, match=message):
        build_segdata(**args, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_valid_pairs_is_an_error_after_writing_summary(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.png")
    write_raw_mask(masks / "a_mask.png", np.zeros((H, W), np.uint8))
    with pytest.raises(LungpriorError, match="no valid image–mask pairs"):
        build_segdata(images, masks, out_dir=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["excluded_count"] == 1
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_cli_builds_dataset_and_prints_stats(tmp_path: Path) -> None:
    images, masks = simple_dataset(tmp_path, 10)
    write_image(images / "lonely.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["segdata", "--images", str(images), "--masks", str(masks), "--out", str(out), "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for expected in ("pairs checked: 10", "train: 8", "val: 1", "test: 1", "kept: 10", "excluded: 1",
                     "  image without mask: 1", "warnings: 0", "masks written: 0"):
        assert expected in lines
    assert len(pd.read_csv(out / "manifest.csv")) == 10


def test_cli_missing_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["segdata", "--images", str(tmp_path / "nope"), "--masks", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --images {tmp_path / 'nope'}: folder not found"
    assert result.stdout == ""
