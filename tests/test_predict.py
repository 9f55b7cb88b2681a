"""`lungprior predict` and `export`: new films scored as in training, resume, QC, errors, ONNX parity, the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dicomfiles import make_dicom
from pagecheck import IMAGES, open_page
from PIL import Image
from scipy.special import expit, logit
from typer.testing import CliRunner

from lungprior.classify import TrainConfig, train
from lungprior.classify.data import make_dataset
from lungprior.cli.main import app
from lungprior.data.io import read_image, read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS
from lungprior.predict import collect_films, predict_films
from lungprior.predict.classifier import OnnxClassifier, TorchClassifier, model_input

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROBS = [f"p_{k}" for k in FINDINGS]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=40, size=256, seed=6, val_fraction=0.25, test_fraction=0.25), out, workers=1,
                       progress=False)
    return out


def _train(bench: Path, out: Path, mode: str) -> Path:
    cfg = TrainConfig(manifest=str(bench / "manifest.csv"), out=str(out), mode=mode, backbone="resnet10t",
                      image_size=32, epochs=1, batch_size=16, accelerator="cpu", devices="1")
    train(cfg, progress=False)
    return out


@pytest.fixture(scope="module")
def tight_run(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = _train(bench, tmp_path_factory.mktemp("tight") / "run", "tight")
    params = {k: {"a": 1.5, "b": -0.25 * i} for i, k in enumerate(FINDINGS)}
    (run / "calibration.json").write_text(json.dumps({"method": "platt", "fitted_on": "val", "params": params}))
    return run


@pytest.fixture(scope="module")
def original_run(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(bench, tmp_path_factory.mktemp("original") / "run", "original")


def _dicom(path: Path, image: np.ndarray) -> Path:
    return make_dicom(path, np.rint(image * 4095).astype(np.uint16), PixelSpacing=[0.5, 0.5])


@pytest.fixture(scope="module")
def films(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two PNG films (one in a subfolder), one as a DICOM series folder, and an unreadable file."""
    root = tmp_path_factory.mktemp("films")
    (root / "sub" / "study1").mkdir(parents=True)
    shutil.copy(bench / "images" / "phantom_00003.png", root / "a.png")
    shutil.copy(bench / "images" / "phantom_00007.png", root / "sub" / "b.png")
    image, _ = read_image(bench / "images" / "phantom_00011.png")
    _dicom(root / "sub" / "study1" / "c.dcm", image)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return root


@pytest.fixture(scope="module")
def batch(tight_run: Path, films: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("pred") / "out"
    return out, predict_films(tight_run, [films], out, seg_backend="litemedsam", seg_engine="torch")


def test_inputs_folders_manifest_and_unique_ids(films: Path, bench: Path, tmp_path: Path) -> None:
    found = collect_films([films])
    assert sorted(f.image_id for f in found) == ["a", "b", "broken", "c"]
    (tmp_path / "x").mkdir()
    shutil.copy(films / "a.png", tmp_path / "x" / "a.png")
    twice = collect_films([films / "a.png", tmp_path / "x" / "a.png", films / "a.png"])
    assert len(twice) == 2 and twice[0].image_id == "a" and twice[1].image_id.startswith("a-")
    listed = collect_films([bench / "manifest.csv"])
    assert len(listed) == 40 and listed[0].path.is_file()
    with pytest.raises(LungpriorError, match="no such file"):
        collect_films([tmp_path / "nothing"])


def test_model_input_matches_the_training_pipeline(tight_run: Path, bench: Path) -> None:
    cfg = TrainConfig.from_json(tight_run / "config.json")
    ds = make_dataset(cfg, "test", train=False, progress=False)
    for i in range(3):
        image_id = ds.image_ids[i]
        image, _ = read_image(bench / "images" / f"{image_id}.png")
        lungs = read_mask(bench / "masks" / f"{image_id}.png")
        x, view = model_input(image, lungs, cfg, None)
        np.testing.assert_array_equal(view, ds.raw_image(i))
        np.testing.assert_allclose(x[0], ds[i][0].numpy(), atol=1e-6)


def test_batch_rows_masks_calibration_and_errors(batch, tight_run: Path, films: Path) -> None:
    out, result = batch
    assert (result.total, result.failed, result.skipped) == (4, 1, 0)
    table = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
    assert sorted(table["image_id"]) == ["a", "b", "c"]
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["image_id"]) == ["broken"] and errors["reason"].iloc[0]
    model = TorchClassifier(tight_run)
    cfg = model.cfg
    params = json.loads((tight_run / "calibration.json").read_text())["params"]
    for _, row in table.iterrows():
        assert row["qc_flag"] == "ok" and row["scored"] == "yes" and row["calibrated"] == "yes"
        assert (out / row["figure"]).is_file() and (out / row["mask_path"]).is_file()
        path = Path(row["path"])
        image, meta = read_image(path)
        lungs = read_mask(out / row["mask_path"], shape=image.shape)
        raw = model.probabilities(model_input(image, lungs, cfg, meta.pixel_spacing_mm)[0])[0]
        expected = [expit(params[k]["a"] * logit(raw[j]) + params[k]["b"]) for j, k in enumerate(FINDINGS)]
        np.testing.assert_allclose(row[PROBS].to_numpy(float), expected, atol=2e-6)
        assert row["p_no_finding"] == pytest.approx(1 - max(expected), abs=2e-6)
        assert row["top_finding"] == FINDINGS[int(np.argmax(expected))]
        assert 0.08 < row["area_fraction"] < 0.65


def test_no_finding_follows_the_chosen_formula(batch, tight_run: Path, films: Path, tmp_path: Path) -> None:
    out, _ = batch
    prod = tmp_path / "prod"
    predict_films(tight_run, [films / "a.png"], prod, seg_backend="litemedsam", seg_engine="torch", cam=False,
                  page=False, no_finding="prod")
    row = pd.read_csv(prod / "predictions.csv", dtype={"image_id": str}).iloc[0]
    assert row["p_no_finding"] == pytest.approx(np.prod(1 - row[PROBS].to_numpy(float)), abs=2e-6)
    assert json.loads((prod / "predict.json").read_text())["no_finding"] == "prod"
    assert json.loads((out / "predict.json").read_text())["no_finding"] == "max"  # the run's default
    with pytest.raises(LungpriorError, match="unknown No Finding method 'mean'"):
        predict_films(tight_run, [films / "a.png"], tmp_path / "bad", seg_backend="litemedsam", no_finding="mean")


def test_rerun_resumes_and_other_settings_are_refused(batch, tight_run: Path, films: Path) -> None:
    out, _ = batch
    before = (out / "predictions.csv").read_text()
    lines = before.splitlines()
    (out / "predictions.csv").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:25])  # killed mid-row
    again = predict_films(tight_run, [films], out, seg_backend="litemedsam", seg_engine="torch")
    assert again.skipped == 2 and again.scored == 1 and again.failed == 1  # the unreadable file is tried again
    after = pd.read_csv(out / "predictions.csv")
    pd.testing.assert_frame_equal(after, pd.read_csv(pd.io.common.StringIO(before)))
    with pytest.raises(LungpriorError, match=r"other settings.*no_finding"):
        predict_films(tight_run, [films], out, seg_backend="litemedsam", seg_engine="torch", no_finding="prod")


def test_a_run_without_a_known_segmenter_says_what_to_pass(tight_run: Path, films: Path, tmp_path: Path) -> None:
    with pytest.raises(LungpriorError, match="--seg-backend"):
        predict_films(tight_run, [films / "a.png"], tmp_path / "out")
    result = CliRunner().invoke(app, ["predict", str(films / "a.png"), "--run", str(tight_run), "--out",
                                      str(tmp_path / "cli")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--seg-weights" in result.output


def test_qc_failure_is_scored_only_when_allowed(original_run: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((128, 128), 90, dtype=np.uint8)).save(blank)
    refused = predict_films(original_run, [blank], tmp_path / "no", cam=False)
    row = pd.read_csv(tmp_path / "no" / "predictions.csv").iloc[0]
    assert refused.not_scored == 1 and row["scored"] == "no" and "QC" in row["status"]
    assert row["qc_flag"] == "empty" and np.isnan(row["p_Mass"])
    rerun = predict_films(original_run, [blank], tmp_path / "no", allow_qc_fail=True, cam=False)  # scores what QC held
    rows = pd.read_csv(tmp_path / "no" / "predictions.csv")
    assert rerun.scored == 1 and rerun.skipped == 0 and len(rows) == 1 and rows.iloc[0]["scored"] == "yes"
    assert json.loads((tmp_path / "no" / "predict.json").read_text())["allow_qc_fail"] is True
    allowed = predict_films(original_run, [blank], tmp_path / "yes", allow_qc_fail=True, cam=False)
    row = pd.read_csv(tmp_path / "yes" / "predictions.csv").iloc[0]
    assert allowed.scored == 1 and row["scored"] == "yes" and "--allow-qc-fail" in row["status"]
    onnx = predict_films(original_run, [blank], tmp_path / "onnx", allow_qc_fail=True, cam=False, engine="onnx")
    row_onnx = pd.read_csv(tmp_path / "onnx" / "predictions.csv").iloc[0]
    assert onnx.scored == 1 and (tmp_path / "onnx" / "onnx" / "classifier.onnx").is_file()
    np.testing.assert_allclose(row_onnx[PROBS].to_numpy(float), row[PROBS].to_numpy(float), atol=1e-4)


def test_onnx_without_cam_never_builds_the_pytorch_classifier(original_run: Path, tmp_path: Path, monkeypatch) -> None:
    import lungprior.predict.pipeline as pipeline
    from lungprior.classify.export import export_run

    exported = export_run(original_run, tmp_path / "model")
    film = tmp_path / "blank.png"
    Image.fromarray(np.full((96, 96), 40, dtype=np.uint8)).save(film)

    def no_torch(*args: object, **kwargs: object) -> None:
        raise AssertionError("the PyTorch classifier was built")

    monkeypatch.setattr(pipeline, "TorchClassifier", no_torch)
    result = predict_films(original_run, [film], tmp_path / "out", engine="onnx", cam=False, allow_qc_fail=True,
                           onnx_model=exported.onnx)
    assert result.scored == 1
    with pytest.raises(AssertionError, match="PyTorch classifier"):
        predict_films(original_run, [film], tmp_path / "cam", engine="onnx", cam=True, onnx_model=exported.onnx)


def test_export_onnx_matches_pytorch_on_films(tight_run: Path, bench: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "--run", str(tight_run), "--out", str(tmp_path), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["labels"] == list(FINDINGS) and card["input"]["shape"][1:] == [1, 32, 32]
    assert card["mask"]["mode"] == "tight" and card["lungprior_version"] and card["calibration"]["method"] == "platt"
    assert card["segmentation"]["source"] == "masks_dir"
    cfg = TrainConfig.from_json(tight_run / "config.json")
    x = np.concatenate([
        model_input(read_image(p)[0], read_mask(bench / "masks" / p.name), cfg, None)[0]
        for p in sorted((bench / "images").glob("*.png"))[:6]
    ])
    torch_p = TorchClassifier(tight_run).probabilities(x)
    onnx_p = OnnxClassifier(tmp_path / "classifier.onnx").probabilities(x)  # a batch of 6: dynamic batch axis
    assert onnx_p.shape == (6, 5) and np.abs(onnx_p - torch_p).max() <= 1e-4
    logits = OnnxClassifier(tmp_path / "classifier.onnx").session.run(["logits"], {"image": x})[0]
    np.testing.assert_allclose(expit(logits), onnx_p, atol=1e-6)


def test_index_page_loads_in_headless_chromium(batch) -> None:
    out, _ = batch
    problems, got = open_page(out / "index.html", {
        "images": IMAGES,
        "ids": "Array.from(document.querySelectorAll('#films tbody tr')).map(r => r.cells[1].textContent)",
        "top": "Array.from(document.querySelectorAll('#films tbody tr')).map(r => Math.max("
               "...Array.from(r.querySelectorAll('td.num')).slice(1, 6).map(c => +c.textContent)))",
        "errors": "Array.from(document.querySelectorAll('#errors tbody tr')).length",
    })
    images, ids, top, errors = got["images"], got["ids"], got["top"], got["errors"]
    assert problems == []
    assert len(images) == 3 and all(done and width > 0 for done, width in images)
    assert sorted(ids) == ["a", "b", "c"] and top == sorted(top, reverse=True)
    assert errors == 1


def test_loggers_asked_for(tmp_path: Path, bench: Path) -> None:
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from lungprior.classify.training import make_loggers

    base = {"manifest": str(bench / "manifest.csv"), "out": str(tmp_path)}
    default = make_loggers(TrainConfig(**base), tmp_path)
    assert [type(lg) for lg in default] == [CSVLogger, TensorBoardLogger]
    assert [type(lg) for lg in make_loggers(TrainConfig(**base, loggers="csv"), tmp_path)] == [CSVLogger]
    with pytest.raises(LungpriorError, match="unknown --logger 'neptune'"):
        TrainConfig(**base, loggers="csv,neptune")
    for name in ("mlflow", "wandb"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(LungpriorError, match=f"needs the {name} package"):
                make_loggers(TrainConfig(**base, loggers=f"csv,{name}"), tmp_path)
        else:
            assert len(make_loggers(TrainConfig(**base, loggers=f"csv,{name}"), tmp_path)) == 2
    result = CliRunner().invoke(app, ["train", "--manifest", str(bench / "manifest.csv"), "--out", str(tmp_path / "r"),
                                      "--logger", "csv", "--logger", "nope"])
    assert result.exit_code == 2 and "unknown --logger 'nope'" in result.output


def test_segmentation_record_and_what_predict_makes_of_it(tight_run: Path, bench: Path, tmp_path: Path) -> None:
    from lungprior.classify.segsource import segmentation_record
    from lungprior.layout import SEGMENTATION
    from lungprior.predict.segmenter import resolve_segmentation
    from lungprior.segment.infer.prompts import AutoPromptConfig
    from lungprior.segment.infer.settings import run_settings
    from lungprior.segment.weights import LITEMEDSAM_SHA256

    assert json.loads((tight_run / SEGMENTATION).read_text())["source"] == "masks_dir"  # written by train
    seg = tmp_path / "seg"
    (seg / "masks").mkdir(parents=True)
    (seg / "segment.json").write_text(json.dumps(run_settings("litemedsam", None, "auto", "auto", AutoPromptConfig())))
    record = segmentation_record(seg / "masks")
    assert record["source"] == "model" and record["weights_sha256"] == LITEMEDSAM_SHA256 and record["prompt"] == "auto"
    run = tmp_path / "run"
    run.mkdir()
    (run / SEGMENTATION).write_text(json.dumps(record))
    cfg = TrainConfig.from_json(tight_run / "config.json")
    settings = resolve_segmentation(run, cfg)
    assert settings.backend == "litemedsam" and settings.weights is None and settings.prompt == "auto"
    (run / SEGMENTATION).write_text(json.dumps({**record, "weights_sha256": "ab" * 32}))
    with pytest.raises(LungpriorError, match="pass --seg-weights PATH"):
        resolve_segmentation(run, cfg)
    other = tmp_path / "other.pth"
    other.write_bytes(b"not the weights")
    with pytest.raises(LungpriorError, match="SHA-256 differs"):
        resolve_segmentation(run, cfg, weights=other)


def test_a_killed_batch_resumes(batch, tight_run: Path, films: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    reference, _ = batch
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lungprior.cli.main", "predict", str(films), "--run", str(tight_run),
           "--out", str(out), "--seg-backend", "litemedsam", "--seg-engine", "torch"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        path = out / "predictions.csv"
        if path.is_file() and len(path.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the batch ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(pd.read_csv(out / "predictions.csv"))
    assert 1 <= done_before < 3
    result = predict_films(tight_run, [films], out, seg_backend="litemedsam", seg_engine="torch")
    assert result.skipped == done_before and result.scored == 3 - done_before
    got = pd.read_csv(out / "predictions.csv").drop(columns=["path"])
    want = pd.read_csv(reference / "predictions.csv").drop(columns=["path"])
    pd.testing.assert_frame_equal(got, want)
    assert pd.read_csv(out / "errors.csv")["image_id"].tolist() == ["broken"]
