"""`chexmask` against hostile tables: path-like and repeated ids, huge sizes, overflowing codes, stricter reruns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fs_snapshot import changes, snapshot
from PIL import Image

from lungprior.data.chexmask import convert_chexmask, decode_rle
from lungprior.layout import mask_name

FULL = "1 64"  # every pixel of an 8 x 8 mask


def _films(root: Path, ids: list[str], sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    rows = []
    for k, image_id in enumerate(ids):
        path = root / "films" / f"f{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        w, h = (sizes or {}).get(image_id, (16, 16))
        Image.new("L" if w * h < 10**7 else "1", (w, h), 90 if w * h < 10**7 else 0).save(path)
        rows.append({"image_id": image_id, "path": str(path), "patient_id": f"p{k}", "view": "PA",
                     "split": "test", "pixel_spacing_mm": 0.5})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _table(root: Path, rows: list[tuple[str, float, str, int, int]]) -> Path:
    frame = pd.DataFrame([{"Image ID": i, "Dice RCA (Mean)": rca, "Left Lung": code, "Right Lung": "",
                           "Heart": "", "Height": h, "Width": w} for i, rca, code, h, w in rows])
    frame.to_csv(root / "table.csv", index=False)
    return root / "table.csv"


def test_hostile_tables_are_bad_items_and_nothing_leaves_out(tmp_path: Path) -> None:
    ids = ["../x", "/tmp/abs.png", "ok", "big", "overflow", "twice", "a\nb", "y" * 240, "bomb"]
    manifest = _films(tmp_path, ids, {"bomb": (10000, 10000)})
    table = _table(tmp_path, [
        ("../x", 0.9, FULL, 8, 8), ("/tmp/abs.png", 0.9, FULL, 8, 8), ("ok", 0.9, FULL, 8, 8),
        ("big", 0.9, FULL, 100000, 100000), ("overflow", 0.9, "1 99999999999999999999999", 8, 8),
        ("twice", 0.9, FULL, 8, 8), ("twice", 0.9, "", 8, 8), ("a\nb", 0.9, FULL, 8, 8),
        ("y" * 240, 0.9, FULL, 8, 8), ("bomb", 0.9, FULL, 8, 8),
    ])
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    result = convert_chexmask(table, manifest, out)
    assert changes(before, snapshot(tmp_path, skip=out)) == []
    excluded = pd.read_csv(out / "excluded.csv", dtype=str, keep_default_na=False)
    reasons = dict(zip(excluded["image_id"], excluded["reason"], strict=True))
    assert "MP limit" in reasons["big"] and "too large" in reasons["overflow"]
    assert "listed 2 times" in reasons["twice"] and "MP limit" in reasons["bomb"]
    kept = pd.read_csv(out / "masks.csv", dtype=str, keep_default_na=False)
    assert sorted(kept["image_id"]) == sorted(["../x", "/tmp/abs.png", "ok", "a\nb", "y" * 240])
    assert result.written == 5
    for image_id, file in zip(kept["image_id"], kept["file"], strict=True):
        assert file == f"masks/{mask_name(image_id)}" and (out / file).is_file()
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(Path(f).name for f in kept["file"])


def test_stricter_rerun_removes_masks_it_now_excludes(tmp_path: Path) -> None:
    manifest = _films(tmp_path, ["a", "b"])
    table = _table(tmp_path, [("a", 0.9, FULL, 8, 8), ("b", 0.75, FULL, 8, 8)])
    out = tmp_path / "out"
    assert convert_chexmask(table, manifest, out, min_rca=0.7).written == 2
    again = convert_chexmask(table, manifest, out, min_rca=0.8)
    assert again.skipped == 1 and again.written == 0
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png"]
    assert sorted(p.name for p in (out / "heart").iterdir()) == ["a.png"]
    excluded = pd.read_csv(out / "excluded.csv", dtype=str)
    assert excluded["image_id"].tolist() == ["b"] and "0.750 < 0.8" in excluded["reason"][0]


def test_rle_values_past_int64_are_one_line() -> None:
    import pytest

    from lungprior.data.chexmask import RleError

    for code in ("1 99999999999999999999999", "9223372036854775807 9223372036854775807"):
        with pytest.raises(RleError, match=r"too large|past"):
            decode_rle(code, 8, 8)
    assert decode_rle(FULL, 8, 8).all() and np.asarray(decode_rle("", 8, 8)).sum() == 0
