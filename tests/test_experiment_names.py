"""Experiment files cannot write outside the experiment folder; bad keys are refused when the file is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.errors import LungpriorError
from lungprior.experiment.config import ExperimentConfig, load_experiment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: ../../escaped\n", "name: Value error, '../../escaped' is not a safe name"),
        ("name: /tmp/escaped\n", "name: Value error, '/tmp/escaped' is not a safe name"),
        ("name: .hidden\n", "is not a safe name"),
        ("name: a/b\n", "is not a safe name"),
        ("training:\n  backbones: [resnet18, ../../resnet18]\n", "training.backbones.1: Value error, '../../resnet18'"),
        ("training:\n  backbones: [resnet5O]\n", "training.backbones.0: Value error, unknown backbone 'resnet5O'"),
        ("training:\n  devices: two\n", "training.devices: Value error, must be a positive number or 'auto'"),
        ("training:\n  devices: '0'\n", "training.devices"),
        ("training:\n  epochs: 1\n  epochs: 2\n", "duplicate key 'epochs'"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
    ],
)
def test_refused_when_read(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(LungpriorError) as err:
        load_experiment(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_names_are_checked_however_the_config_is_made() -> None:
    with pytest.raises(ValueError, match="not a safe name"):
        ExperimentConfig(name="../x")
    assert ExperimentConfig(name="study-1.v2_b").name == "study-1.v2_b"


def test_cli_creates_nothing_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    (work / "exp.yaml").write_text("name: ../../escaped\n")
    result = CliRunner().invoke(app, ["experiment", "exp.yaml"])
    assert result.exit_code == 2 and "not a safe name" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["a"] and sorted(os.listdir(work)) == ["exp.yaml"]
