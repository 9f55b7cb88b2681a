"""Two processes on the CPU (gloo) give the single-process results: training and segmentation, via the CLI.

Training: `torchrun --nproc-per-node 2 lungprior train --devices 2 --strategy ddp --batch-size 4` against
`lungprior train --devices 1 --batch-size 8`, same seed. Segmentation: two processes with torchrun's RANK /
WORLD_SIZE / LOCAL_RANK writing into one folder, against one process. Every run starts at once in the module
fixture `jobs` (their start-up overlaps on this 2-core machine); each test waits for the runs it checks. The
sampler, the augmentation seed and the all-reduce BatchNorm have unit tests in test_ddp_units.py.

Tolerances, and what was measured here (resnet18, 32 px, 35 train images, 2 epochs of 4 global batches):
val AUROC and train loss 1e-4 (measured 0 and 1.3e-6); test probabilities 1e-3 (1.2e-5; per-process
BatchNorm instead of synchronised gives 2.9e-2); weights: ||w_ddp - w_one||_2 / ||w_one - w_init||_2 < 0.1
(0.019; one process with 1 vs 2 threads gives 0.003; per-process BatchNorm 1.34). Element-wise weight gaps
reach ~1e-3 even between two single-process runs with different thread counts: AdamW turns float noise in
near-zero gradients into steps of about lr, so max-abs weight differences do not measure correctness.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from lungprior.classify import TrainConfig, create_backbone, predict_split
from lungprior.classify.data import prepare
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.labels import FINDINGS

SEED = 3
TRAIN_ARGS = ["--backbone", "resnet18", "--image-size", "32", "--epochs", "2", "--accelerator", "cpu",
              "--mode", "original", "--seed", str(SEED)]
N_FILMS = 4
VAL_AUROC_TOL = 1e-4
LOSS_TOL = 1e-4
PROB_TOL = 1e-3
WEIGHT_REL_TOL = 0.1
TIMEOUT_S = 400
DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK", "MASTER_ADDR",
            "MASTER_PORT", "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lungprior() -> str:
    """The `lungprior` console script (torchrun starts it once per rank)."""
    exe = shutil.which("lungprior", path=str(Path(sys.executable).parent)) or shutil.which("lungprior")
    assert exe, "the lungprior console script is not installed (pip install -e .)"
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


@dataclass
class Job:
    """A started CLI run; `wait()` returns once it has ended and fails the test on a non-zero exit."""

    name: str
    proc: subprocess.Popen
    log: Path

    def wait(self) -> None:
        try:
            rc = self.proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill(self)
            pytest.fail(f"{self.name}: no result after {TIMEOUT_S} s\n{self.tail()}")
        assert rc == 0, f"{self.name}: exit code {rc}\n{self.tail()}"

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def _start(name: str, command: list[str], cwd: Path, env: dict[str, str]) -> Job:
    cwd.mkdir(parents=True, exist_ok=True)
    log = cwd.parent / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return Job(name, proc, log)


def _kill(job: Job) -> None:
    """End a run still going: SIGTERM first (torchrun passes it on to its workers), then SIGKILL."""
    if job.proc.poll() is not None:
        return
    os.killpg(job.proc.pid, signal.SIGTERM)
    try:
        job.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(job.proc.pid, signal.SIGKILL)
        job.proc.wait()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 train images (not a multiple of 8), every finding in val; the input cache is built here, once."""
    out = tmp_path_factory.mktemp("ddp-bench")
    generate_benchmark(PhantomConfig(n=60, size=64, seed=6, val_fraction=0.2, test_fraction=0.2), out, workers=1,
                       progress=False)
    manifest = out / "manifest.csv"
    prepare(_cfg(manifest, out / "unused"), progress=False)
    return manifest


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp-films")
    generate_benchmark(PhantomConfig(n=N_FILMS, size=256, seed=3), out, workers=1, progress=False)
    return out / "manifest.csv"


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict = {"manifest": str(manifest), "out": str(out), "backbone": "resnet18", "image_size": 32,
                  "epochs": 2, "batch_size": 8, "accelerator": "cpu", "devices": "1", "seed": SEED}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def jobs(bench: Path, films: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Job]]:
    root = tmp_path_factory.mktemp("ddp-jobs")
    exe = _lungprior()
    seg = [exe, "segment", "--manifest", str(films), "--engine", "onnx", "--no-progress"]
    train = [exe, "train", "--manifest", str(bench), *TRAIN_ARGS, "--out", "run"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "--no-python"]
    started = {
        "train-ddp": _start("train-ddp", [*torchrun, *train, "--devices", "2", "--strategy", "ddp",
                                          "--batch-size", "4"], root / "train-ddp", _env()),
        "train-1": _start("train-1", [*train, "--devices", "1", "--batch-size", "8"], root / "train-1", _env()),
        "seg-1": _start("seg-1", [*seg, "--out", str(root / "seg-1" / "out")], root / "seg-1", _env()),
    }
    for r in (0, 1):
        env = _env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2")
        started[f"seg-{r}of2"] = _start(f"seg-{r}of2", [*seg, "--out", str(root / "seg-2" / "out")],
                                        root / f"seg-rank{r}", env)
    yield started
    for job in started.values():
        _kill(job)


# --- training -----------------------------------------------------------------------------------------------


def _run_dir(job: Job) -> Path:
    return job.log.parent / job.name / "run"


def _tree(folder: Path) -> list[str]:
    """Files under `folder`, TensorBoard event files (named by time, host and pid) under one name."""
    names = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        names.append(rel.split("events.out.tfevents.")[0] + "events" if "events.out.tfevents." in rel else rel)
    return names


def test_ddp_training_writes_one_run(jobs: dict[str, Job]) -> None:
    """The DDP run leaves one run folder, laid out as the single-process one (no per-rank duplicates)."""
    jobs["train-1"].wait()
    jobs["train-ddp"].wait()
    one, ddp = _run_dir(jobs["train-1"]), _run_dir(jobs["train-ddp"])
    assert sorted(p.name for p in ddp.parent.iterdir()) == ["run"]  # nothing beside it (no lightning_logs/)
    assert _tree(ddp) == _tree(one)
    for name in ("model.pt", "efficiency.json", "history.csv", "config.json"):
        assert [p.relative_to(ddp).as_posix() for p in ddp.rglob(name)] == [name]
    assert [p.name for p in (ddp / "csv").iterdir()] == ["version_0"]
    assert [p.name for p in (ddp / "tensorboard").iterdir()] == ["version_0"]
    assert "training with 2 processes (gloo)" in jobs["train-ddp"].log.read_text(errors="replace")


def test_ddp_training_matches_one_process(jobs: dict[str, Job]) -> None:
    jobs["train-1"].wait()
    jobs["train-ddp"].wait()
    one, ddp = _run_dir(jobs["train-1"]), _run_dir(jobs["train-ddp"])
    h1, h2 = pd.read_csv(one / "history.csv"), pd.read_csv(ddp / "history.csv")
    assert h1["epoch"].tolist() == h2["epoch"].tolist() == [0, 1]
    assert h1["train_images"].tolist() == h2["train_images"].tolist() == [32, 32]  # 4 global batches of 8
    for col in ("val_auroc", *(f"val_auroc_{f}" for f in FINDINGS)):
        np.testing.assert_allclose(h2[col], h1[col], rtol=0, atol=VAL_AUROC_TOL, err_msg=col)
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=0, atol=LOSS_TOL)

    w1 = torch.load(one / "model.pt", weights_only=True)
    w2 = torch.load(ddp / "model.pt", weights_only=True)
    assert w1.keys() == w2.keys()
    assert all(torch.equal(w1[k], w2[k]) for k in w1 if k.endswith("num_batches_tracked"))  # 8 steps each
    L.seed_everything(SEED, verbose=False)
    initial = create_backbone("resnet18", "none", 32)[0].state_dict()  # what both runs started from
    learned = [k for k in w1 if w1[k].is_floating_point() and "running_" not in k]
    gap = torch.sqrt(sum(((w2[k] - w1[k]) ** 2).sum() for k in learned))
    moved = torch.sqrt(sum(((w1[k] - initial[k]) ** 2).sum() for k in learned))
    max_abs = max(float((w2[k] - w1[k]).abs().max()) for k in learned)
    assert float(moved) > 0.1 and float(gap / moved) < WEIGHT_REL_TOL, (float(gap / moved), max_abs)

    p1, p2 = predict_split(one, "test"), predict_split(ddp, "test")
    cols = [f"p_{f}" for f in FINDINGS]
    assert p1["image_id"].tolist() == p2["image_id"].tolist() and len(p1) == 15
    np.testing.assert_allclose(p2[cols].to_numpy(), p1[cols].to_numpy(), rtol=0, atol=PROB_TOL)


# --- segmentation -------------------------------------------------------------------------------------------


def _mask_bytes(masks: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(masks.glob("*.png"))}


def test_two_process_segmentation_matches_one_process(jobs: dict[str, Job], films: Path) -> None:
    for name in ("seg-1", "seg-0of2", "seg-1of2"):
        jobs[name].wait()
    one = jobs["seg-1"].log.parent / "seg-1" / "out"
    two = jobs["seg-1"].log.parent / "seg-2" / "out"
    ids = sorted(pd.read_csv(films, dtype={"image_id": str})["image_id"])
    masks = _mask_bytes(two / "masks")
    assert len(masks) == N_FILMS and masks == _mask_bytes(one / "masks")
    qc1 = pd.read_csv(one / "qc.csv", dtype={"image_id": str})
    qc2 = pd.read_csv(two / "qc.csv", dtype={"image_id": str})
    assert qc2["image_id"].tolist() == ids  # merged: every image once
    pd.testing.assert_frame_equal(qc2, qc1)
    shard_ids = [pd.read_csv(two / f"qc.shard-{r}.csv", dtype={"image_id": str})["image_id"].tolist()
                 for r in (0, 1)]
    assert [len(s) for s in shard_ids] == [N_FILMS // 2] * 2 and sorted(shard_ids[0] + shard_ids[1]) == ids
    assert sorted(p.name for p in (two / "shards").iterdir()) == ["done-0-of-2", "done-1-of-2"]
    assert pd.read_csv(two / "errors.csv").empty
    logs = jobs["seg-0of2"].log.read_text() + jobs["seg-1of2"].log.read_text()
    assert "(shard 0/2)" in logs and "(shard 1/2)" in logs
