"""Training runs: checkpoints load with weights_only, exported weights are verified, last.ckpt every epoch."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lungprior.classify import TrainConfig, train
from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    generate_benchmark(PhantomConfig(n=60, size=64, seed=6, val_fraction=0.2, test_fraction=0.2), out, workers=1,
                       progress=False)
    return out / "manifest.csv"


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict = {"manifest": str(manifest), "out": str(out), "backbone": "resnet10t", "image_size": 32,
                  "epochs": 2, "batch_size": 32, "accelerator": "cpu", "devices": "1", "mode": "original"}
    return TrainConfig(**{**base, **kw})


class _KillAt(L.Callback):
    """Stop the process as a kill would when epoch `epoch` starts (the epochs before it are complete)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise SystemExit("killed")


class _NoImprovement(L.Callback):
    """Make epoch `epoch` a non-improving one: its val_auroc, as the checkpoint callbacks see it, is 0."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.callback_metrics["val_auroc"] = torch.tensor(0.0)


class _Payload:
    """Pickles to a call that writes a marker file: what a planted checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _killed_run(bench: Path, run: Path, kill_at: int = 1, **kw: object) -> TrainConfig:
    cfg = _cfg(bench, run, **kw)
    with pytest.raises(SystemExit):
        train(cfg, progress=False, callbacks=[_KillAt(kill_at)])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    return cfg


def test_kill_after_a_non_improving_epoch_resumes_at_the_next(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _cfg(bench, run, epochs=3)
    with pytest.raises(SystemExit):  # epoch 1 does not improve; killed as epoch 2 starts
        train(cfg, progress=False, callbacks=[_NoImprovement(1), _KillAt(2)])
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["epoch"] == 0
    resumed = train(cfg, progress=False)
    second = pd.read_csv(run / "csv" / "version_1" / "metrics.csv")
    assert set(second["epoch"].dropna().astype(int)) == {2}  # epoch 1 is not redone
    assert resumed.resumed and resumed.epochs_run == 3
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["best.ckpt", "last.ckpt"])
def test_planted_checkpoint_runs_no_code(bench: Path, tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    cfg = _killed_run(bench, run)
    marker = tmp_path / "ran.txt"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, run / "checkpoints" / name)
    with pytest.raises(LungpriorError) as err:
        train(cfg, progress=False, callbacks=[_NoImprovement(1)])  # best.ckpt stays the planted one
    assert not marker.exists()
    assert str(run / "checkpoints" / name) in str(err.value) and "refused" in str(err.value)
    assert not (run / "efficiency.json").exists() and not (run / "model.pt").exists()


def test_exported_weights_are_verified_before_the_run_is_finished(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _killed_run(bench, run)
    best = run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(best, weights_only=True)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if "fc" not in k}  # a head-less model
    torch.save(ckpt, best)
    with pytest.raises(LungpriorError, match=r"weights do not match the model .*missing \(fc\.weight"):
        train(cfg, progress=False, callbacks=[_NoImprovement(1)])
    assert not (run / "efficiency.json").exists() and not (run / "model.pt").exists()


def test_truncated_last_checkpoint_is_one_line(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _killed_run(bench, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    config = json.loads((run / "config.json").read_text())
    args = ["train", "--manifest", config["manifest"], "--out", str(run), "--backbone", "resnet10t",
            "--image-size", "32", "--epochs", "2", "--batch-size", "32", "--accelerator", "cpu", "--devices", "1",
            "--mode", "original"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and str(last) in line and "corrupt or truncated" in line and "delete it" in line
