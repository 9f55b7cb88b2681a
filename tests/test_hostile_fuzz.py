"""Fuzz: random structure.csv, CheXmask tables and run-folder JSON (seeded, a few seconds each) raise no other
error than a one-line `LungpriorError` (a CheXmask table with its columns: none at all, bad rows are recorded)
and write nothing outside the output folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fs_snapshot import changes, snapshot
from PIL import Image

from lungprior.errors import LungpriorError

SECONDS = 4.0
NAMES = ["a.png", "b.png", "../b.png", "/tmp/lp-fuzz/x.png", "sub/a.png", "c\n.png", "é.png", "d" * 240 + ".png",
         "", " ", ".", "..", "nan", "a.PNG", "missing.png"]
NUMBERS: list[Any] = [0, 1, -1, 5, 8, 2**31, 2**63, 1e300, float("nan"), float("inf"), "x", "", "1e3", 0.5, None]


def _pick(rng: np.random.Generator, pool: list[Any]) -> Any:
    return pool[int(rng.integers(len(pool)))]


def _until(seed: int) -> Any:
    """Seeded generators until the time budget is spent (at least three)."""
    start, k = time.monotonic(), 0
    while k < 3 or time.monotonic() - start < SECONDS:
        yield k, np.random.default_rng(seed * 1000 + k)
        k += 1


def _check_quietly(call: Any) -> None:
    try:
        call()
    except LungpriorError as exc:
        assert "\n" not in " ".join(str(exc).split()) and str(exc)


def test_fuzz_structure_csv(tmp_path: Path) -> None:
    from lungprior.data.structures import build_structure_segdata

    data = tmp_path / "data"
    (data / "images" / "sub").mkdir(parents=True)
    (data / "masks").mkdir()
    (tmp_path / "victim").mkdir()
    (tmp_path / "abs").mkdir()
    for path in (data / "images" / "a.png", data / "images" / "b.png", data / "images" / "é.png",
                 data / "images" / "sub" / "b.png", tmp_path / "victim" / "b.png", tmp_path / "abs" / "b.png"):
        Image.fromarray(np.full((40, 50), 100, np.uint8)).save(path)
    films = [*NAMES, "../../victim/b.png", str(tmp_path / "abs" / "b.png"), "sub/b.png", "b.png", "a.png"]
    films += films[-5:] * 3  # existing films, often
    places: list[Any] = [3, 5, 20, 0, 3, -4, *NUMBERS]
    Image.fromarray(np.full((10, 8), 255, np.uint8)).save(data / "masks" / "m.png")
    (data / "masks" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    for k, rng in _until(1):
        rows = []
        for film in (_pick(rng, films) for _ in range(int(rng.integers(1, 5)))):
            extra = [_pick(rng, ["Right Lung", "Heart", "", None])] * int(rng.random() < 0.3)
            sides = ["Right Lung", "Left Lung", *extra]
            rows += [{"Template Name": side, "Filename": film,
                      "Mask": _pick(rng, ["masks/m.png"] * 6 + ["masks/bad.png", "../x.png", "", "/dev/zero", "masks"]),
                      "Top": _pick(rng, places), "Left": _pick(rng, places),
                      "Resolution": _pick(rng, ["50x40"] * 4 + ["0x64", "64x0", "100000x100000", "1x1", "abc", None])}
                     for side in sides]
        pd.DataFrame(rows).to_csv(data / "structure.csv", index=False)
        out = tmp_path / f"out{k}"
        before = snapshot(tmp_path, skip=out)
        side = int(rng.integers(32, 64))
        _check_quietly(lambda out=out, side=side: build_structure_segdata(  # type: ignore[misc]
            data / "structure.csv", out_dir=out, val_fraction=0, test_fraction=0, max_side=side, structures=("Heart",)))
        assert changes(before, snapshot(tmp_path, skip=out)) == [], rows


def test_fuzz_chexmask_table(tmp_path: Path) -> None:
    from lungprior.data.chexmask import convert_chexmask

    ids = ["a", "../b", "c\nd", "e" * 240]
    rows = []
    for k, image_id in enumerate(ids):
        Image.new("L", (16, 16), 90).save(tmp_path / f"f{k}.png")
        rows.append({"image_id": image_id, "path": str(tmp_path / f"f{k}.png"), "patient_id": "p", "view": "PA",
                     "split": "test", "pixel_spacing_mm": 0.5})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    codes = ["1 64", "", "1 2 3", "a b", "0 3", "99999999999999999999 1", "1 -5", "9223372036854775807 2", None]
    for k, rng in _until(2):
        table = [{"Image ID": _pick(rng, [*ids, "zzz", "", "/etc/passwd"]), "Dice RCA (Mean)": _pick(rng, NUMBERS),
                  "Left Lung": _pick(rng, codes), "Right Lung": _pick(rng, codes), "Heart": _pick(rng, codes),
                  "Height": _pick(rng, [*NUMBERS, 8, 8, 8]), "Width": _pick(rng, [*NUMBERS, 8, 8, 8])}
                 for _ in range(int(rng.integers(1, 8)))]
        pd.DataFrame(table).to_csv(tmp_path / "table.csv", index=False)
        out = tmp_path / f"out{k}"
        before = snapshot(tmp_path, skip=out)
        result = convert_chexmask(tmp_path / "table.csv", tmp_path / "manifest.csv", out, min_rca=float(rng.random()))
        assert result.written + result.skipped + result.excluded >= len(ids)  # every film accounted for
        assert changes(before, snapshot(tmp_path, skip=out)) == [], table


def _random_json(rng: np.random.Generator, depth: int = 0) -> Any:
    kind = int(rng.integers(8 if depth < 3 else 5))
    if kind == 0:
        return _pick(rng, [0, -1, 1.5, 2**70, True, None])
    if kind == 1:
        return _pick(rng, ["model", "auto", "", "x" * 50, "chexmask"])
    if kind == 2:
        return float(_pick(rng, [0.5, float("nan"), float("inf"), -1e308]))
    if kind in (3, 4):
        return _pick(rng, [[], {}, "threshold"])
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))]
    keys = ["source", "auto", "threshold", "prior_boxes", "prompt", "macro_auroc", "per_class", "Effusion", "auroc",
            "n_images", "bootstrap", "no_finding", "weights"]
    return {_pick(rng, keys): _random_json(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))}


@pytest.mark.parametrize("file", ["segmentation.json", "metrics.json"])
def test_fuzz_run_folder_json(tmp_path: Path, file: str) -> None:
    from lungprior.classify.export import _metrics
    from lungprior.classify.segsource import read_segmentation_record

    read = (lambda: read_segmentation_record(tmp_path, None)) if file == "segmentation.json" else (
        lambda: _metrics(tmp_path))
    for _, rng in _until(3 if file == "segmentation.json" else 4):
        value = _random_json(rng)
        if rng.random() < 0.5 and isinstance(value, dict):
            value["source"] = "model"
        text = json.dumps(value)
        if rng.random() < 0.1:
            text = text[: int(rng.integers(len(text) + 1))]  # truncated
        (tmp_path / file).write_text(text)
        before = snapshot(tmp_path)
        _check_quietly(read)
        assert changes(before, snapshot(tmp_path)) == []
