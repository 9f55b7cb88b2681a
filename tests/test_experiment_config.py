"""Experiment files: validation with clear errors, the shipped configs, stage skipping."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungprior.errors import LungpriorError
from lungprior.experiment.config import load_experiment
from lungprior.experiment.stages import content_hash, run_stage

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("training:\n  epochs: 0\n", "training.epochs: Input should be greater than or equal to 1"),
        ("trainig:\n  epochs: 3\n", "trainig: Extra inputs are not permitted"),
        ("masks:\n  - {mode: tigth}\n", "masks.0.mode: Input should be"),
        ("dataset: {kind: nih}\n", "needs an 'nih:' section"),
        ("dataset: {kind: manifest}\nsegmentation: {source: ground_truth}\n", "needs 'manifest: PATH'"),
        ("segmentation: {backend: medsam}\n", "needs 'checkpoint"),
        ("masks:\n  - {mode: tight}\n  - {mode: tight}\n", "duplicate mask settings"),
        ("training: {seeds: [0, 0]}\n", "seed listed twice in [0, 0]"),
        ("segmentation: {check_films: 8}\n", "check_films is for source 'ground_truth'"),
        ("[1, 2]\n", "top level must be a mapping"),
        ("a: [\n", "not valid YAML"),
        ("dataset: {phantom: {val_fraction: 0.5, test_fraction: 0.5}}\n", "must be below 1"),
    ],
)
def test_bad_experiment_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(LungpriorError, match=message.replace("[", r"\[").replace("(", r"\(")) as err:
        load_experiment(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LungpriorError, match="not found"):
        load_experiment(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["configs/nih_paper.yaml", "configs/looseness_sweep.yaml",
                                  "configs/loose20_context.yaml", "configs/loose20_replication.yaml",
                                  "configs/context1_loose20.yaml", "configs/context1_loose20_long.yaml",
                                  "configs/context1_far_long.yaml", "configs/shortcut_cell_long.yaml",
                                  "src/lungprior/experiment/demo.yaml",
                                  "src/lungprior/experiment/demo_full.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_experiment(ROOT / name)
    assert cfg.masks and cfg.training.backbones


def test_looseness_sweep_covers_tight_to_original() -> None:
    cfg = load_experiment(ROOT / "configs/looseness_sweep.yaml")
    modes = [m.mode for m in cfg.masks]
    assert modes[0] == "tight" and modes[-1] == "original" and "soft" in modes
    assert len([m for m in cfg.masks if m.mode == "loose"]) >= 3


def test_stage_skips_when_unchanged_and_reruns_when_changed(tmp_path: Path) -> None:
    calls = []

    def work(folder: Path) -> dict:
        calls.append(folder)
        return {"value": len(calls)}

    a = run_stage("s", tmp_path / "s", content_hash("x", 1), work)
    b = run_stage("s", tmp_path / "s", content_hash("x", 1), work)
    c = run_stage("s", tmp_path / "s", content_hash("x", 2), work)
    assert a.ran and not b.ran and c.ran
    assert b.record["value"] == 1 and c.record["value"] == 2


def test_killed_stage_runs_again(tmp_path: Path) -> None:
    def boom(folder: Path) -> dict:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage("s", tmp_path / "s", "k", boom)
    assert not (tmp_path / "s" / "stage.json").exists()
    assert run_stage("s", tmp_path / "s", "k", lambda f: {}).ran


def test_phantom_split_fractions_reach_the_benchmark(tmp_path: Path) -> None:
    import pandas as pd

    from lungprior.experiment.runner import data_stage

    path = tmp_path / "exp.yaml"
    path.write_text("dataset: {phantom: {n: 40, size: 64, val_fraction: 0.1, test_fraction: 0.5}}\n")
    record = data_stage(load_experiment(path), tmp_path / "exp").record
    patients = pd.read_csv(record["manifest"]).groupby("split")["patient_id"].nunique()
    assert patients["test"] / patients.sum() == pytest.approx(0.5, abs=0.05)
