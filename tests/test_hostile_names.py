"""Hostile ids and sizes: one file-name rule (`safe_name`), one size gate (`check_pixels`), regular files only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fs_snapshot import changes, snapshot
from PIL import Image

from lungprior.data.atomic import atomic_open
from lungprior.data.io import image_size, read_image, write_mask
from lungprior.data.limits import check_pixels
from lungprior.data.regular import open_regular
from lungprior.data.safename import MAX_SAFE_BYTES, safe_name
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.layout import mask_name, mask_path_for
from lungprior.segment.preprocess import preprocess_longest_side
from lungprior.segment.weights import sha256_file

HOSTILE_IDS = ["/tmp/A/x.png", "../../../victim/y.png", "..", ".", "", "a\nb", "a\rb\x00c", "x" * 300,
               "é" * 200, "\u202eevil", "a/b", "a\\b", ".hidden", "-dash", "日本語" * 40, "a" * 233 + "/b"]


@pytest.mark.parametrize("image_id", HOSTILE_IDS)
def test_hostile_ids_stay_inside_the_folder(tmp_path: Path, image_id: str) -> None:
    name = safe_name(image_id)
    assert name and "/" not in name and "\\" not in name and name not in (".", "..")
    assert name.isprintable() and not name.startswith(".") and len(name.encode()) <= MAX_SAFE_BYTES
    target = mask_path_for(tmp_path / "masks", image_id)
    assert target.parent == tmp_path / "masks" and target.resolve().parent == (tmp_path / "masks").resolve()
    write_mask(target, np.ones((4, 4), bool))  # a temp name beside it must fit the 255-byte limit too
    assert [p.name for p in (tmp_path / "masks").iterdir()] == [target.name]


def test_safe_ids_are_kept_and_unsafe_ones_are_distinct() -> None:
    for plain in ["00000001_000", "phantom_00001", "Patient 7 (PA)", "日本語", "a.b-c+d=e@f,g[h]"]:
        assert safe_name(plain) == plain
    assert mask_name("00000001_000.png") == "00000001_000.png" and mask_name("a.dcm") == "a.png"
    names = {safe_name(i) for i in HOSTILE_IDS}
    assert len(names) == len(HOSTILE_IDS)  # a short hash of the id keeps unsafe ids apart
    assert safe_name("../x") != safe_name("..\\x") and safe_name("../x").startswith("x-")


def test_temp_names_stay_under_255_bytes(tmp_path: Path) -> None:
    long = tmp_path / ("f" * 250)
    with atomic_open(long, "w") as fh:
        fh.write("ok")
    assert long.read_text() == "ok"


@pytest.mark.parametrize("size, message", [((16, 20000), "times the other"), ((0, 64), "not positive"),
                                           ((100000, 100000), "MP limit"), ((-3, 5), "not positive")])
def test_one_size_gate(size: tuple[int, int], message: str) -> None:
    with pytest.raises(ImageReadError, match=message):
        check_pixels("x", *size)


def test_elongated_film_is_one_bad_item_and_preprocess_never_makes_a_zero_side(tmp_path: Path) -> None:
    Image.fromarray(np.full((16, 2000), 100, np.uint8)).save(tmp_path / "thin.png")
    with pytest.raises(ImageReadError, match=r"thin\.png: image size 2000x16"):
        read_image(tmp_path / "thin.png")
    with pytest.raises(ImageReadError, match="times the other"):
        image_size(tmp_path / "thin.png")
    tensor, transform = preprocess_longest_side(np.random.default_rng(0).random((16, 20000)).astype(np.float32))
    assert transform.resized_size == (1, 256) and tensor.shape == (3, 256, 256)


def test_header_bomb_is_refused_by_image_size(tmp_path: Path) -> None:
    Image.new("1", (10000, 10000)).save(tmp_path / "bomb.png")  # 100 MP, a few kB
    with pytest.raises(ImageReadError, match="MP limit"):
        image_size(tmp_path / "bomb.png")


def test_fifos_and_devices_are_refused_before_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "film.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="FIFO"):
        read_image(fifo)  # would block forever in open() without the rule
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(LungpriorError, match="not a regular file"):
            sha256_file(path)  # /dev/zero would be read forever
        with pytest.raises(LungpriorError, match="not a regular file"):
            open_regular(path)
    with pytest.raises(ImageReadError, match="device"):
        read_image("/dev/zero")


def _structure_dataset(root: Path, films: list[str], resolution: dict[str, str] | None = None) -> Path:
    """A structure.csv whose films sit where `images/<Filename>` points (created if needed)."""
    data = root / "data"
    rows = []
    for n, film in enumerate(films):
        path = data / "images" / film
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.random.default_rng(n).random((40, 50)) * 255).astype(np.uint8)).save(path, "PNG")
        for side, left in (("Right Lung", 3), ("Left Lung", 28)):
            crop = data / "masks" / f"{n}_{side[0]}.png"
            crop.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 15), 255, np.uint8)).save(crop)
            rows.append({"Template Name": side, "Filename": film, "Mask": f"masks/{crop.name}", "Top": 5,
                         "Left": left, "Resolution": (resolution or {}).get(film, "50x40")})
    pd.DataFrame(rows).to_csv(data / "structure.csv", index=False)
    return data / "structure.csv"


def test_structure_csv_with_path_filenames_writes_only_inside_out(tmp_path: Path) -> None:
    from lungprior.data.structures import build_structure_segdata

    films = ["y.png", "../../victim/y.png", "sub/y.png"]
    csv = _structure_dataset(tmp_path, films)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    result = build_structure_segdata(csv, out_dir=out, val_fraction=0, test_fraction=0, max_side=32)
    assert changes(before, snapshot(tmp_path, skip=out)) == []
    df = result.manifest
    assert sorted(df["image_id"]) == sorted(films)  # the ids stay what the CSV says ...
    for _, row in df.iterrows():  # ... and every file is a safe name inside OUT, recorded in the manifest
        for column in ("mask_path", "path"):
            written = (out / row[column]).resolve()
            assert written.is_file() and out.resolve() in written.parents
    assert len(set(df["mask_path"])) == 3


def test_structure_resolution_zero_or_huge_is_one_excluded_film(tmp_path: Path) -> None:
    from lungprior.data.structures import build_structure_segdata

    csv = _structure_dataset(tmp_path, ["ok.png", "zero.png", "huge.png"],
                             {"zero.png": "0x64", "huge.png": "100000x100000"})
    result = build_structure_segdata(csv, out_dir=tmp_path / "out", val_fraction=0, test_fraction=0)
    assert result.manifest["image_id"].tolist() == ["ok"]
    reasons = {e["item"]: e["reason"] for e in result.summary["excluded"]}
    assert "not positive" in reasons["zero"] and "MP limit" in reasons["huge"]


def test_predict_inputs_bad_spacing_is_one_line_and_odd_film_names_get_safe_ids(tmp_path: Path) -> None:
    from lungprior.predict import collect_films

    film = tmp_path / "films" / "a\nb#c?%.png"
    film.parent.mkdir()
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(film, "PNG")
    (found,) = collect_films([film.parent])
    assert found.image_id == safe_name("a\nb#c?%") and found.image_id.isprintable() and "#" not in found.image_id
    for value in ("abc", "-1", "0", "inf"):
        pd.DataFrame({"image_id": ["a"], "path": [str(film)], "pixel_spacing_mm": [value]}).to_csv(
            tmp_path / "m.csv", index=False)
        with pytest.raises(LungpriorError, match="pixel_spacing_mm of 'a'"):
            collect_films([tmp_path / "m.csv"])


def test_an_output_folder_inside_an_input_folder_is_not_read_back(tmp_path: Path) -> None:
    from lungprior.predict import collect_films
    from lungprior.predict.inputs import PREDICT_SETTINGS
    from lungprior.predict.pipeline import SETTINGS

    assert PREDICT_SETTINGS == SETTINGS
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "out" / "films").mkdir(parents=True)
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "out" / "films" / "a.png")
    assert len(collect_films([tmp_path])) == 2  # not yet an output folder
    (tmp_path / "out" / SETTINGS).write_text("{}")
    assert [f.path for f in collect_films([tmp_path])] == [tmp_path / "a.png"]


def test_a_second_live_predict_into_one_folder_is_refused(tmp_path: Path) -> None:
    from lungprior.data.lock import folder_lock
    from lungprior.errors import FolderBusyError
    from lungprior.predict import predict_films

    with folder_lock(tmp_path / "out", "predict"), pytest.raises(FolderBusyError, match="in use by process"):
        predict_films(tmp_path / "no-run", [tmp_path], tmp_path / "out")
    with pytest.raises(LungpriorError, match="not a finished training run"):  # the lock is free again
        predict_films(tmp_path / "no-run", [tmp_path], out_dir=tmp_path / "out")


def test_a_fifo_as_a_table_is_refused_without_blocking(tmp_path: Path) -> None:
    from lungprior.data.manifest import read_csv

    os.mkfifo(tmp_path / "manifest.csv")
    with pytest.raises(LungpriorError, match="FIFO"):
        read_csv(tmp_path / "manifest.csv")
