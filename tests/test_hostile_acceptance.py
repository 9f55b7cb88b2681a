"""Acceptance: issue 31's attacks re-run through the command line, each in a subprocess with a timeout.

Every run: nothing is written outside `--out` (a snapshot of the temporary root before and after), no command
hangs (a timeout), a bad item is recorded while the batch goes on, and a refusal is one line with exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fs_snapshot import changes, snapshot
from PIL import Image

import lungprior

SRC = str(Path(lungprior.__file__).resolve().parents[1])
TIMEOUT = 120


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lungprior ARGS` in a subprocess, its HOME beside the watched root (libraries keep caches there)."""
    home = cwd.parent / "home"
    env = {**os.environ, "PYTHONPATH": SRC, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    return subprocess.run([sys.executable, "-m", "lungprior.cli.main", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=TIMEOUT)


def one_line_refusal(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and line.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in line, line


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def test_structure_csv_attacks(root: Path) -> None:
    data = root / "data"
    rows = []
    films = {"y.png": (40, 50), "../../victim/y.png": (40, 50), "/ABS/x.png": (40, 50), "thin.png": (16, 400),
             "zero.png": (40, 50), "huge.png": (40, 50), "fifo.png": None, "z" * 240 + ".png": (40, 50)}
    for n, (film, size) in enumerate(films.items()):
        path = data / "images" / film.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is None:
            os.mkfifo(path)
        else:
            Image.fromarray(np.full(size, 120, np.uint8)).save(path, "PNG")
        resolution = {"zero.png": "0x64", "huge.png": "100000x100000"}.get(film, "50x40")
        for side, left in (("Right Lung", 3), ("Left Lung", 28)):
            crop = data / "masks" / f"{n}{side[0]}.png"
            crop.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((10, 8), 255, np.uint8)).save(crop)
            name = str(data / "images" / "ABS" / "x.png") if film.startswith("/ABS/") else film
            rows.append({"Template Name": side, "Filename": name, "Mask": f"masks/{crop.name}", "Top": 5, "Left": left,
                         "Resolution": resolution})
    pd.DataFrame(rows).to_csv(data / "structure.csv", index=False)
    out = root / "out"
    before = snapshot(root)
    result = cli("segdata", "--structure-csv", str(data / "structure.csv"), "--out", str(out), "--val-fraction", "0",
                 "--test-fraction", "0", "--max-side", "32", cwd=root)
    assert result.returncode == 0, result.stderr
    assert changes(before, snapshot(root, skip=out)) == []
    summary = json.loads((out / "summary.json").read_text())
    kinds = {e["item"]: e["reason"] for e in summary["excluded"]}
    assert {"thin", "zero", "huge", "fifo"} <= set(kinds) and "FIFO" in kinds["fifo"]
    assert summary["counts"]["total"] == 4  # y, victim/y, ABS/x, the long name: the batch went on
    for path in (out / "masks").iterdir():
        assert len(path.name.encode()) < 255


def test_chexmask_attacks_and_rerun(root: Path) -> None:
    films = root / "films"
    films.mkdir()
    ids = ["../x", "ok", "fifo", "big", "rle"]
    rows = []
    for k, image_id in enumerate(ids):
        path = films / f"f{k}.png"
        if image_id == "fifo":
            os.mkfifo(path)
        else:
            Image.new("L", (16, 16), 90).save(path)
        rows.append({"image_id": image_id, "path": str(path), "patient_id": f"p{k}", "view": "PA", "split": "test",
                     "pixel_spacing_mm": 0.5})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    table = pd.DataFrame([{"Image ID": i, "Dice RCA (Mean)": 0.9 if i != "ok" else 0.75,
                           "Left Lung": "1 99999999999999999999999" if i == "rle" else "1 64", "Right Lung": "",
                           "Heart": "", "Height": 100000 if i == "big" else 8, "Width": 100000 if i == "big" else 8}
                          for i in ids])
    table.to_csv(root / "table.csv", index=False)
    out = root / "out"
    before = snapshot(root)
    first = cli("chexmask", "--csv", str(root / "table.csv"), "--manifest", str(root / "manifest.csv"),
                "--out", str(out), cwd=root)
    assert first.returncode == 0, first.stderr
    assert changes(before, snapshot(root, skip=out)) == []
    reasons = pd.read_csv(out / "excluded.csv", dtype=str).set_index("image_id")["reason"].to_dict()
    assert "FIFO" in reasons["fifo"] and "MP limit" in reasons["big"] and "too large" in reasons["rle"]
    assert len(list((out / "masks").iterdir())) == 2  # ../x and ok
    stricter = cli("chexmask", "--csv", str(root / "table.csv"), "--manifest", str(root / "manifest.csv"),
                   "--out", str(out), "--min-rca", "0.8", cwd=root)
    assert stricter.returncode == 0, stricter.stderr
    assert len(list((out / "masks").iterdir())) == 1  # "ok" (RCA 0.75) removed


def test_regime_refusal(root: Path) -> None:
    path = root / "r.yaml"
    path.write_text("regime:\n  bias: [0.0]\n  bias: [0.9]\n")
    before = snapshot(root)
    one_line_refusal(cli("regime", str(path), "--out", str(root / "out"), cwd=root), "duplicate key", str(path))
    assert changes(before, snapshot(root)) == []


def test_export_refusals(root: Path) -> None:
    from lungprior.classify.backbone import create_backbone
    from lungprior.classify.config import TrainConfig

    run = root / "run"
    run.mkdir()
    cfg = TrainConfig(manifest=str(root / "m.csv"), out=str(run), mode="original", backbone="resnet10t",
                      image_size=32, epochs=1)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(create_backbone("resnet10t", "none", 32)[0].state_dict(), run / "model.pt")
    (run / "metrics.json").write_text('{"macro_auroc": "0.8x"}')
    out = root / "out"
    before = snapshot(root)
    one_line_refusal(cli("export", "--run", str(run), "--out", str(out), cwd=root), "macro_auroc")
    assert changes(before, snapshot(root, skip=out)) == [] and not (out / "classifier.onnx").exists()
    (run / "metrics.json").write_text('{"macro_auroc": 0.8}')
    ok = cli("export", "--run", str(run), "--out", str(out), cwd=root)
    assert ok.returncode == 0, ok.stderr
    card = json.loads((out / "model_card.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert card["metrics"]["macro_auroc"] == 0.8
    assert not (root.parent / "home" / ".cache" / "Microsoft").exists()  # ONNX Runtime's telemetry folder


def test_segment_batch_goes_on_past_hostile_films(root: Path) -> None:
    films = root / "films"
    films.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for image_id, size in (("../x", (64, 80)), ("L" * 240, (64, 80)), ("thin", (16, 400)), ("fifo", None),
                           ("ok", (64, 80))):
        path = films / f"{len(rows)}.png"
        if size is None:
            os.mkfifo(path)
        else:
            Image.fromarray((rng.random(size) * 255).astype(np.uint8)).save(path)
        rows.append({"image_id": image_id, "path": str(path), "patient_id": "p", "view": "PA", "split": "test",
                     "pixel_spacing_mm": 1.0})
    pd.DataFrame(rows).to_csv(root / "m.csv", index=False)
    out = root / "out"
    before = snapshot(root)
    result = cli("segment", "--manifest", str(root / "m.csv"), "--out", str(out), "--engine", "torch", cwd=root)
    assert result.returncode == 0, result.stderr
    assert changes(before, snapshot(root, skip=out)) == []
    errors = pd.read_csv(out / "errors.csv", dtype=str).set_index("image_id")["reason"].to_dict()
    assert set(errors) == {"thin", "fifo"} and "times the other" in errors["thin"] and "FIFO" in errors["fifo"]
    qc = pd.read_csv(out / "qc.csv", dtype=str, keep_default_na=False)
    assert sorted(qc["image_id"]) == sorted(["../x", "L" * 240, "ok"])  # the batch went on
    assert len(list((out / "masks").iterdir())) == 3
