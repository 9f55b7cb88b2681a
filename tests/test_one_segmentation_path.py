"""`predict` and `segment` segment a film the same way (`LungPredictor`): byte-identical masks, identical QC rows.

The films: a phantom film inside a black frame with burned-in letters (the border crop), the same film as a
16-bit PNG, and pydicom-data's real adult PA chest film `RG1_UNCI.dcm` (a DICOM without pixel spacing).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.classify import TrainConfig, train
from lungprior.data.io import read_image
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.predict import predict_films
from lungprior.predict.segmenter import Segmenter, resolve_segmentation
from lungprior.segment.infer import QC_COLUMNS, mask_path_for, segment_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pydicom.data import get_testdata_file

    root = tmp_path_factory.mktemp("films")
    bench = root / "bench"
    generate_benchmark(PhantomConfig(n=16, size=128, seed=3, val_fraction=0.5, test_fraction=0.0), bench,
                       workers=1, progress=False)
    film, _ = read_image(bench / "images" / "phantom_00001.png")
    grey = np.rint(cv2.resize(film, (320, 320), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)
    framed = cv2.copyMakeBorder(grey, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=0)
    cv2.putText(framed, "L PORTABLE", (64, 84), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
    films = root / "films"
    films.mkdir()
    Image.fromarray(framed).save(films / "bordered.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(films / "sixteen.png")
    shutil.copy(get_testdata_file("RG1_UNCI.dcm"), films / "rg1.dcm")
    return root


def test_predict_and_segment_give_identical_masks_and_qc_rows(films: Path) -> None:
    folder = films / "films"
    names = ["bordered.png", "sixteen.png", "rg1.dcm"]
    assert read_image(folder / "sixteen.png")[1].bit_depth == 16
    pd.DataFrame({"image_id": names, "path": names, "patient_id": names, "view": "PA", "split": "test",
                  "pixel_spacing_mm": ""}).to_csv(folder / "manifest.csv", index=False)
    seg = segment_manifest(folder / "manifest.csv", films / "seg", engine="torch", progress=False)
    assert (seg.done, seg.failed) == (3, 0)
    qc = pd.read_csv(seg.qc_path, dtype=str, keep_default_na=False).set_index("image_id")

    cfg = TrainConfig(manifest=str(films / "bench" / "manifest.csv"), out=str(films / "run"), mode="original",
                      backbone="resnet10t", image_size=32, epochs=1, batch_size=8, accelerator="cpu", devices="1")
    train(cfg, progress=False)
    out = films / "pred"
    predict_films(films / "run", [folder / n for n in names], out, seg_engine="torch", cam=False, page=False)
    rows = pd.read_csv(out / "predictions.csv", dtype=str, keep_default_na=False).set_index("image_id")
    segmenter = Segmenter(resolve_segmentation(films / "run", cfg.resolved()), engine="torch")
    for name in names:
        image_id = Path(name).stem
        seg_mask = mask_path_for(seg.masks_dir, name).read_bytes()
        assert (out / rows.loc[image_id, "mask_path"]).read_bytes() == seg_mask, name
        row = qc.loc[name]
        assert rows.loc[image_id, "qc_flag"] == row["flag"] and rows.loc[image_id, "qc_reason"] == row["reason"]
        direct = segmenter(name, read_image(folder / name)[0]).qc
        for column in QC_COLUMNS[1:]:
            value = direct[column]
            if isinstance(value, float):
                assert float(row[column] or "nan") == pytest.approx(value, abs=1e-6, nan_ok=True), (name, column)
            else:
                assert str(row[column]) == str(value), (name, column)
    # the real normal adult PA film (and the phantoms) pass QC and are scored without --allow-qc-fail
    assert (rows["qc_flag"] == "ok").all() and (rows["scored"] == "yes").all(), rows[["qc_flag", "qc_reason"]]
    assert np.isfinite(float(qc.loc["bordered.png", "stability"]))  # predict's QC now has the stability too
    assert float(qc.loc["bordered.png", "border_touch"]) < 0.25  # the frame was cropped before segmenting


def test_segment_flags_films_below_the_reliable_size_and_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lungprior.cli.main import app
    from lungprior.segment.infer.qc import QC

    bench = tmp_path / "bench"
    generate_benchmark(PhantomConfig(n=2, size=96, seed=4), bench, workers=1, progress=False)
    result = CliRunner().invoke(app, ["segment", "--manifest", str(bench / "manifest.csv"), "--out",
                                      str(tmp_path / "seg"), "--engine", "torch", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "failed: 0  QC flagged: 2 (small film 2" in result.output
    assert "note: masks from the bundled LiteMedSAM weights, not fine-tuned" in result.output  # no --weights
    qc = pd.read_csv(tmp_path / "seg" / "qc.csv", dtype=str, keep_default_na=False)
    assert qc["reason"].str.startswith(f"film of 96x96 pixels (< {QC.min_film_side}").all()
