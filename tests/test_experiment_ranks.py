"""Experiments on several processes: who leads, waiting for the lead's stages, a 2-process (gloo) study."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from lungprior.data.atomic import write_json
from lungprior.experiment.stages import STAGE_FILE, run_stage
from lungprior.ranks import global_rank, is_lead


@pytest.mark.parametrize(
    ("env", "lead"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),
        ({"SLURM_PROCID": "0"}, True),
        ({"SLURM_PROCID": "5"}, False),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),  # started by Lightning's DDP launcher
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),  # node 1's first process
        ({"LOCAL_RANK": "0"}, True),
    ],
)
def test_is_lead(env: dict, lead: bool) -> None:
    assert is_lead(env) is lead
    assert (global_rank(env) == 0) is lead


@pytest.mark.parametrize(
    ("env", "devices", "rank"),
    [
        ({"RANK": "5", "LOCAL_RANK": "1", "NODE_RANK": "1"}, None, 5),  # torchrun's RANK wins
        # Lightning's launcher on machine 1 of 2 with 4 processes each: its first process is global rank 4, not 0
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, 4, 4),
        ({"LOCAL_RANK": "2", "NODE_RANK": "1"}, "4", 6),
        ({"LOCAL_RANK": "2", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "3"}, 4, 5),  # the launcher's size wins
        ({"LOCAL_RANK": "1", "GROUP_RANK": "0"}, 2, 1),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, "auto", 1),  # size unknown: still not the lead
        ({"LOCAL_RANK": "1", "SLURM_PROCID": "0"}, 2, 1),  # Lightning's child inside a one-task SLURM job
        ({"SLURM_PROCID": "7"}, None, 7),
        ({"RANK": "x"}, None, 0),
    ],
)
def test_global_rank_on_several_machines(env: dict, devices: int | str | None, rank: int) -> None:
    assert global_rank(env, devices) == rank


def test_training_and_the_experiment_ask_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first process of a second machine (LOCAL_RANK 0, NODE_RANK 1) is no lead anywhere."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_WORLD_SIZE", "GROUP_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert not is_lead() and global_rank(devices=2) == 2


def test_a_non_lead_process_waits_for_the_leads_record(tmp_path: Path) -> None:
    folder = tmp_path / "stage"
    ran: list[str] = []

    def lead_finishes() -> None:
        time.sleep(0.6)
        folder.mkdir()
        write_json(folder / STAGE_FILE, {"stage": "data", "hash": "old"})  # another key first: not accepted
        time.sleep(0.6)
        write_json(folder / STAGE_FILE, {"stage": "data", "hash": "k1", "manifest": "m.csv"})

    thread = threading.Thread(target=lead_finishes)
    start = time.perf_counter()
    thread.start()
    out = run_stage("data", folder, "k1", lambda f: ran.append("work") or {}, lead=False)
    thread.join()
    assert ran == [] and not out.ran and out.record["manifest"] == "m.csv"
    assert time.perf_counter() - start >= 1.2
    assert run_stage("data", folder, "k2", lambda f: {"manifest": "new"}, lead=True).ran  # the lead runs it


CONFIG = """
name: ddp
dataset:
  kind: phantom
  phantom: {n: 64, size: 64, seed: 2, bias: 0.9}
segmentation: {source: ground_truth}
masks:
  - {mode: original}
  - {mode: tight}
training: {backbones: [resnet10t], seeds: [0], image_size: 32, epochs: 2, batch_size: 4, devices: "2",
           strategy: ddp, accelerator: cpu}
evaluation: {bootstrap: 20, cam: false}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_study_as_torchrun_launches_it(tmp_path: Path) -> None:
    """Two processes with torchrun's environment: one set of stages and tables, training joined over gloo."""
    config = tmp_path / "ddp.yaml"
    config.write_text(CONFIG)
    exp = tmp_path / "out"
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "GROUP_RANK": "0", "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "lungprior.cli.main", "experiment", str(config), "--out", str(exp)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "report:" in outputs[0] and "report:" not in outputs[1]  # only the lead reports
    results = pd.read_csv(exp / "results.csv")
    assert sorted(set(results["mask"])) == ["original", "tight"] and len(results) == 2 * 7
    for mask in ("original", "tight"):
        run = exp / "runs" / f"resnet10t__{mask}__seed0"
        record = json.loads((run / STAGE_FILE).read_text())
        assert record["mask"] == mask
        history = pd.read_csv(run / "train" / "history.csv")
        assert len(history) == 2  # one row per epoch, written once
        assert (run / "train" / "metrics.json").is_file()
    data_record = json.loads((exp / "data" / STAGE_FILE).read_text())
    assert Path(data_record["manifest"]).is_file()
    assert (exp / "report.html").stat().st_size > 10_000
