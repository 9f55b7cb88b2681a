"""`lungprior train`: runs in each mode and backbone, determinism, resume, predictions, CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lungprior.classify import TrainConfig, TrainResult, create_backbone, load_run, predict_split, train
from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS, LABELS

RUN_FILES = (
    "config.json", "model.pt", "efficiency.json", "history.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
)
EFFICIENCY_KEYS = {
    "epochs_run", "best_epoch", "best_val_auroc", "seconds_per_epoch", "seconds_to_best", "train_images_per_s",
    "peak_memory_mb", "cache_build_seconds",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    cfg = PhantomConfig(n=60, size=64, seed=6, val_fraction=0.2, test_fraction=0.2)  # every finding in val
    generate_benchmark(cfg, out, workers=1, progress=False)
    return out / "manifest.csv"


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    """Tiny runs: 32 px, one training batch per epoch (35 train images, batch 32, last partial batch dropped)."""
    base: dict = {"manifest": str(manifest), "out": str(out), "backbone": "resnet18", "image_size": 32,
                  "epochs": 1, "batch_size": 32, "accelerator": "cpu", "devices": "1", "radius_px": 3.0}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], tuple[TrainResult, Path]]:
    """Train each (backbone, mode) once per module; later tests reuse the run."""
    runs: dict[tuple[str, str], tuple[TrainResult, Path]] = {}

    def get(backbone: str, mode: str) -> tuple[TrainResult, Path]:
        if (backbone, mode) not in runs:
            out = tmp_path_factory.mktemp(f"{backbone}-{mode}") / "run"
            runs[backbone, mode] = (train(_cfg(bench, out, backbone=backbone, mode=mode), progress=False), out)
        return runs[backbone, mode]

    return get


@pytest.mark.parametrize("backbone", ["resnet18", "densenet121"])
@pytest.mark.parametrize("mode", ["original", "tight", "loose"])
def test_train_each_mode_and_backbone(bench: Path, trained: Callable, backbone: str, mode: str) -> None:
    result, run = trained(backbone, mode)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert list((run / "csv").glob("version_0/metrics.csv")) and any((run / "tensorboard").rglob("events.*"))
    assert math.isfinite(result.best_val_auroc) and 0.0 <= result.best_val_auroc <= 1.0
    assert result.epochs_run == 1 and result.best_epoch == 0 and not result.resumed
    stored = json.loads((run / "efficiency.json").read_text())
    assert set(stored) >= EFFICIENCY_KEYS and stored["best_val_auroc"] == pytest.approx(result.best_val_auroc)
    assert stored["train_images_per_s"] > 0 and stored["peak_memory_mb"] > 0
    model, cfg = load_run(run)
    assert not model.training and cfg.mode == mode and cfg.backbone == backbone
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    preds = predict_split(run, "test", batch_size=8)
    manifest = pd.read_csv(bench, dtype={"image_id": str})
    assert preds["image_id"].tolist() == manifest.loc[manifest["split"] == "test", "image_id"].tolist()
    assert list(preds.columns) == ["image_id", "patient_id", *LABELS, *(f"p_{f}" for f in FINDINGS)]
    probs = preds[[f"p_{f}" for f in FINDINGS]].to_numpy()
    assert np.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all()


def test_same_seed_same_run(bench: Path, tmp_path: Path, trained: Callable) -> None:
    a, run_a = trained("resnet18", "tight")
    b = train(_cfg(bench, tmp_path / "b", mode="tight"), progress=False)
    assert a.best_val_auroc == b.best_val_auroc
    np.testing.assert_equal(a.val_auroc_per_finding, b.val_auroc_per_finding)
    wa = torch.load(run_a / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    L.seed_everything(0, verbose=False)
    initial, _ = create_backbone("resnet18")  # what the runs started from: training did move the weights
    assert not torch.equal(wa["layer1.0.conv1.weight"], initial.state_dict()["layer1.0.conv1.weight"])


class _Kill(L.Callback):
    """Stop the process as a kill would, once epoch 1 starts (epoch 0 and its checkpoint are complete)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise SystemExit("killed")


def test_resume_after_kill_then_extend(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _cfg(bench, run, mode="loose", radius_px=2.0, epochs=2)
    with pytest.raises(SystemExit):
        train(cfg, progress=False, callbacks=[_Kill()])
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "efficiency.json").exists()
    resumed = train(cfg, progress=False)
    assert resumed.resumed and resumed.epochs_run == 2
    second = pd.read_csv(run / "csv" / "version_1" / "metrics.csv")
    assert set(second["epoch"].dropna().astype(int)) == {1}  # only the missing epoch was trained
    extended = train(replace(cfg, epochs=3), progress=False)
    history = pd.read_csv(run / "history.csv")
    assert extended.epochs_run == 3 and history["epoch"].tolist() == [0, 1, 2]
    third = pd.read_csv(run / "csv" / "version_2" / "metrics.csv")
    assert set(third["epoch"].dropna().astype(int)) == {2}
    # cosine over the current epochs: epoch 2 of 3 at lr * 0.25
    assert history["lr"].iloc[2] == pytest.approx(cfg.lr * 0.25)
    done = train(replace(cfg, epochs=3), progress=False)
    assert done.already_finished and not (run / "csv" / "version_3").exists()
    with pytest.raises(LungpriorError, match=r"other settings \(lr: 0\.0003 -> 0\.001\)"):
        train(replace(cfg, lr=1e-3), progress=False)


def test_bad_inputs_fail_before_training(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LungpriorError, match="unknown backbone 'resnet5O'"):
        train(_cfg(bench, tmp_path / "r1", backbone="resnet5O"), progress=False)
    assert not (tmp_path / "r1" / "config.json").exists()
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(LungpriorError, match="not in the local cache"):
        train(_cfg(bench, tmp_path / "r2", pretrained="imagenet"), progress=False)
    assert not (tmp_path / "r2" / "config.json").exists()  # a failed start leaves no run behind
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    with pytest.raises(LungpriorError, match="not empty and holds no run"):
        train(_cfg(bench, tmp_path / "full"), progress=False)


def test_cli_options_map_to_the_config(bench: Path, trained: Callable) -> None:
    """The CLI with the API run's settings finds that run finished (any setting mapped wrongly would refuse it)."""
    result, out = trained("resnet18", "original")
    runner = CliRunner()
    args = ["train", "--manifest", str(bench), "--out", str(out), "--backbone", "resnet18", "--image-size", "32",
            "--epochs", "1", "--batch-size", "32", "--accelerator", "cpu", "--devices", "1", "--radius-px", "3",
            "--mode", "original"]
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "already finished" in again.stdout and f"{result.best_val_auroc:.4f}" in again.stdout
    changed = runner.invoke(app, [*args, "--lr", "0.01"])
    assert changed.exit_code == 2 and "other settings (lr: 0.0003 -> 0.01)" in changed.stderr
    bad = runner.invoke(app, [*args[:-1], "wide"])
    assert bad.exit_code == 2
    assert bad.stderr.strip().count("\n") == 0 and "unknown --mode 'wide'" in bad.stderr
