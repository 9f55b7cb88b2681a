"""Prompt-free segmentation runs: cascade quality, batching, resume (also after SIGKILL), sharding, errors, CLI.

The LiteMedSAM encoder takes seconds per image on 2 CPU cores, so one 2-film phantom is segmented once
(`run_a`, both films in one encoder batch) and reused; the sharded and the killed runs encode the films one
at a time and must give the same bytes (batch composition does not matter). The ONNX engine, the whole-box
baseline and the real DICOM are tested in test_segment_infer_onnx.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.io import read_image, read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.infer import (
    QC_COLUMNS,
    SegmentResult,
    TorchEngine,
    mask_path_for,
    segment_manifest,
)
from lungprior.segment.overlap import dice
from lungprior.segment.registry import create_backend

N_FILMS = 2
MIN_DICE = 0.85


def write_manifest(path: Path, rows: list[tuple[str, Path]]) -> Path:
    pd.DataFrame({
        "image_id": [r[0] for r in rows], "path": [str(r[1]) for r in rows], "patient_id": "P0", "view": "PA",
        "split": "test", "pixel_spacing_mm": 1.0,
    }).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=N_FILMS, size=256, seed=3), root, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def manifest(bench) -> Path:
    return bench / "manifest.csv"


@pytest.fixture(scope="module")
def ids(bench) -> list[str]:
    return pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})["image_id"].tolist()


@pytest.fixture(scope="module")
def run_a(bench, tmp_path_factory) -> SegmentResult:
    """The reference run: auto prompts, both films in one batch, torch engine."""
    out = tmp_path_factory.mktemp("run_a")
    return segment_manifest(bench / "manifest.csv", out, engine="torch", batch_size=2, progress=False)


def mask_bytes(masks_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(masks_dir.glob("*.png"))}


# --- quality and determinism --------------------------------------------------------------------------------


def test_auto_prompts_find_two_plausible_lungs(run_a, bench, ids) -> None:
    assert (run_a.done, run_a.skipped, run_a.failed, run_a.engine) == (N_FILMS, 0, 0, "torch")
    qc = pd.read_csv(run_a.qc_path, dtype={"image_id": str}, keep_default_na=False)
    assert list(qc.columns) == list(QC_COLUMNS) and qc["image_id"].tolist() == sorted(ids)
    assert (qc["flag"] == "ok").all() and (qc["prompt_source"] == "auto").all() and (qc["n_components"] == 2).all()
    assert (qc["lr_area_ratio"] > 0.5).all() and (qc["mean_prob"] > 0.8).all()
    for image_id in ids:
        mask = read_mask(mask_path_for(run_a.masks_dir, image_id))
        gt = read_mask(bench / "masks" / f"{image_id}.png")
        assert mask.shape == gt.shape == (256, 256)
        assert dice(mask, gt) >= MIN_DICE, (image_id, dice(mask, gt))
        assert set(np.unique(np.asarray(Image.open(mask_path_for(run_a.masks_dir, image_id))))) == {0, 255}


# --- resume, sharding, SIGKILL ------------------------------------------------------------------------------


def test_rerun_skips_finished_images_and_drops_a_partial_row(run_a, manifest, ids, tmp_path) -> None:
    out = tmp_path / "resume"
    shutil.copytree(run_a.out_dir, out)
    with open(out / "qc.csv", "a", encoding="utf-8") as fh:
        fh.write(f"{ids[1]},0.25")  # a row cut short by a kill
    again = segment_manifest(manifest, out, engine="torch", progress=False)
    assert (again.done, again.skipped, again.failed, again.engine) == (0, N_FILMS, 0, "-")  # no model loaded
    assert mask_bytes(out / "masks") == mask_bytes(run_a.masks_dir)
    assert (out / "qc.csv").read_bytes() == run_a.qc_path.read_bytes()


def test_two_shards_match_one_process(run_a, manifest, tmp_path) -> None:
    """Each shard holds one film, so this also compares batches of 1 with run_a's batch of 2."""
    out = tmp_path / "sharded"
    first = segment_manifest(manifest, out, engine="torch", batch_size=2, shard="0/2", progress=False)
    assert (first.total, first.done, first.merged) == (1, 1, False)
    assert (out / "qc.shard-0.csv").is_file() and not (out / "qc.csv").exists()
    second = segment_manifest(manifest, out, engine="torch", batch_size=2, shard=(1, 2), progress=False)
    assert (second.total, second.done, second.merged) == (1, 1, True)
    assert mask_bytes(out / "masks") == mask_bytes(run_a.masks_dir)
    assert (out / "qc.csv").read_bytes() == run_a.qc_path.read_bytes()
    assert (out / "errors.csv").read_text() == "image_id,path,reason\n"


def test_sigkill_then_rerun_gives_identical_masks(run_a, manifest, tmp_path) -> None:
    """Kill the CLI (a subprocess) once the first mask exists, rerun it (in-process), compare every byte."""
    out = tmp_path / "killed"
    args = ["segment", "--manifest", str(manifest), "--out", str(out), "--engine", "torch", "--batch-size", "1",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "lungprior.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    while not list((out / "masks").glob("[!.]*.png")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert len(list((out / "masks").glob("[!.]*.png"))) == 1
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    assert f"images: {N_FILMS}" in rerun.stdout and "failed: 0" in rerun.stdout
    assert mask_bytes(out / "masks") == mask_bytes(run_a.masks_dir)
    assert (out / "qc.csv").read_bytes() == run_a.qc_path.read_bytes()
    assert not list((out / "masks").glob(".*"))  # no temporary files left behind


def test_an_embedding_cache_is_reused_read_only_and_rounded_alike(run_a, manifest, bench, ids, tmp_path,
                                                                   monkeypatch) -> None:
    """Film 0's embedding comes from the cache (as a frozen-encoder fine-tune leaves it), film 1 is encoded."""
    backend = create_backend("litemedsam")
    cache = EmbeddingCache(tmp_path / "emb", backend)
    first = bench / "images" / f"{ids[0]}.png"
    cache.get(first, backend.preprocess(read_image(first)[0])[0])
    encoded: list[int] = []
    original = TorchEngine.encode
    monkeypatch.setattr(TorchEngine, "encode", lambda self, batch: encoded.append(len(batch)) or original(self, batch))
    out = tmp_path / "cached"
    result = segment_manifest(manifest, out, engine="torch", batch_size=2, progress=False,
                              embedding_cache=tmp_path / "emb")
    assert result.done == N_FILMS and encoded == [1]  # one film encoded, one reused
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 1  # read only
    for image_id in ids:  # float16 embeddings: the same lungs up to a few boundary pixels
        assert dice(read_mask(mask_path_for(out / "masks", image_id)),
                    read_mask(mask_path_for(run_a.masks_dir, image_id))) > 0.998
    assert json.loads((out / "segment.json").read_text())["embeddings"] == "float16"
    with pytest.raises(LungpriorError, match=r'holds masks made with other settings \(embeddings: "float16" -> null\)'):
        segment_manifest(manifest, out, engine="torch", progress=False)


# --- bad inputs, prompts, settings --------------------------------------------------------------------------


def test_prompt_csv_bad_inputs_and_a_blank_image(bench, ids, tmp_path) -> None:
    """CSV boxes; a corrupt, a missing and an unprompted image are logged while the others finish."""
    gt = np.asarray(Image.open(bench / "masks" / f"{ids[0]}.png"))
    boxes = [("blank", 8, 8, 40, 56)]
    for value in (255, 128):  # one box per ground-truth lung
        ys, xs = np.nonzero(gt == value)
        boxes.append((ids[0], xs.min(), ys.min(), xs.max(), ys.max()))
    prompts = tmp_path / "boxes.csv"
    pd.DataFrame(boxes, columns=["image_id", "x0", "y0", "x1", "y1"]).to_csv(prompts, index=False)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 80), 90, np.uint8)).save(blank)
    rows = [("corrupt.png", corrupt), (ids[0], bench / "images" / f"{ids[0]}.png"), ("blank", blank),
            ("missing.png", tmp_path / "missing.png"), (ids[1], bench / "images" / f"{ids[1]}.png")]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    result = segment_manifest(manifest, tmp_path / "out", prompt=prompts, engine="torch", progress=False)
    assert (result.done, result.failed) == (2, 3)
    errors = pd.read_csv(result.errors_path)
    assert errors["image_id"].tolist() == ["corrupt.png", "missing.png", ids[1]]
    assert errors["path"].tolist() == [str(corrupt), str(tmp_path / "missing.png"), str(rows[4][1])]
    assert "corrupt or truncated PNG" in errors["reason"][0] and errors["reason"][1] == "file not found"
    assert errors["reason"][2] == f"no box for this image in {prompts}"
    qc = pd.read_csv(result.qc_path, dtype={"image_id": str}, keep_default_na=False).set_index("image_id")
    assert qc.loc["blank", "flag"] == "empty" and qc.loc["blank", "area_fraction"] == 0
    assert qc.loc[ids[0], "flag"] == "ok" and qc.loc[ids[0], "prompt_source"] == "csv"
    assert not read_mask(result.masks_dir / "blank.png", shape=(64, 80)).any()
    assert dice(read_mask(mask_path_for(result.masks_dir, ids[0])), gt >= 128) >= 0.9
    assert sorted(p.name for p in result.masks_dir.iterdir()) == ["blank.png", f"{ids[0]}.png"]
    with pytest.raises(LungpriorError, match=r'holds masks made with other settings \(prompt: "csv" -> "auto"; '):
        segment_manifest(manifest, tmp_path / "out", engine="torch", progress=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,x0,y0,x1,y1\na,10,10,5,20\n")
    with pytest.raises(LungpriorError, match=r"bad\.csv: line 2 \(a\): need 0 <= x0 <= x1"):
        segment_manifest(manifest, tmp_path / "out2", prompt=bad, progress=False)


def test_mask_name_collisions_and_bad_options_are_refused(bench, tmp_path) -> None:
    image = bench / "images" / "phantom_00000.png"
    twins = write_manifest(tmp_path / "twins.csv", [("a.png", image), ("a.dcm", image)])
    with pytest.raises(LungpriorError, match=r"'a\.png' and 'a\.dcm' would share the mask file a\.png"):
        segment_manifest(twins, tmp_path / "o", progress=False)
    one = write_manifest(tmp_path / "one.csv", [("a", image)])
    with pytest.raises(LungpriorError, match="batch size must be >= 1"):
        segment_manifest(one, tmp_path / "o", batch_size=0)
    with pytest.raises(LungpriorError, match="shard '2/2': need 0 <= i < n"):
        segment_manifest(one, tmp_path / "o", shard="2/2")
    with pytest.raises(LungpriorError, match="unknown engine 'tensorrt'"):
        segment_manifest(one, tmp_path / "o", engine="tensorrt", progress=False)


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_errors_are_one_line_with_exit_2(tmp_path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nope.csv"
    res = runner.invoke(app, ["segment", "--manifest", str(missing), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.stderr == f"error: {missing}: file not found\n"
    res = runner.invoke(app, ["segment", "--merge", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "no qc.shard-*.csv" in res.stderr
    res = runner.invoke(app, ["segment", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr == "error: --manifest is required (or use --merge --out DIR)\n"
