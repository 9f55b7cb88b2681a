"""One folder convention for masks: `train --masks`, `masks --seg` and `segeval --pred` each accept a `lungprior
segment` output folder (holding masks/) or the masks/ folder itself, and name both layouts when neither fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.layout import resolve_masks_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom benchmark: manifest.csv, images/ and masks/ (laid out as a `lungprior segment` output)."""
    root = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=24, size=96, seed=6, val_fraction=0.25, test_fraction=0.25), root, workers=1,
                       progress=False)
    return root


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args)


def _refused(result, option: str, folder: Path) -> None:
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: {option} {folder}: ")
    assert "`lungprior segment` output folder" in result.stderr and "the masks/ folder itself" in result.stderr


def test_the_resolver(bench: Path, tmp_path: Path) -> None:
    assert resolve_masks_dir(bench) == bench / "masks" and resolve_masks_dir(bench / "masks") == bench / "masks"
    with pytest.raises(LungpriorError, match=r"--pred .*: folder not found; give a `lungprior segment`"):
        resolve_masks_dir(tmp_path / "nope", "--pred")
    with pytest.raises(LungpriorError, match=r"no masks/ folder and no mask \.png in it"):
        resolve_masks_dir(tmp_path)


@pytest.mark.parametrize("layout", ["segment", "masks"])
def test_train_takes_either_layout(bench: Path, tmp_path: Path, layout: str) -> None:
    folder = bench if layout == "segment" else bench / "masks"
    out = tmp_path / "run"
    result = _invoke(["train", "--manifest", str(bench / "manifest.csv"), "--out", str(out), "--mode", "tight",
                      "--masks", str(folder), "--backbone", "resnet10t", "--image-size", "32", "--epochs", "1",
                      "--batch-size", "8", "--accelerator", "cpu", "--devices", "1", "--cache", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert Path(config["masks"]) == (bench / "masks").resolve()


def test_train_names_both_layouts(bench: Path, tmp_path: Path) -> None:
    result = _invoke(["train", "--manifest", str(bench / "manifest.csv"), "--out", str(tmp_path / "run"),
                      "--mode", "tight", "--masks", str(tmp_path)])
    _refused(result, "--masks", tmp_path)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("layout", ["segment", "masks"])
def test_gallery_takes_either_layout(bench: Path, tmp_path: Path, layout: str) -> None:
    folder = bench if layout == "segment" else bench / "masks"
    result = _invoke(["masks", "--manifest", str(bench / "manifest.csv"), "--seg", str(folder), "--mode", "tight",
                      "--gallery", str(tmp_path / "g.png"), "--n", "2"])
    assert result.exit_code == 0, result.output
    assert "(films: 2, mask: tight)" in result.stdout and "skipped" not in result.stdout


def test_gallery_names_both_layouts(bench: Path, tmp_path: Path) -> None:
    result = _invoke(["masks", "--manifest", str(bench / "manifest.csv"), "--seg", str(tmp_path / "nope"),
                      "--gallery", str(tmp_path / "g.png")])
    _refused(result, "--seg", tmp_path / "nope")


@pytest.mark.parametrize("layout", ["segment", "masks"])
def test_segeval_takes_either_layout(bench: Path, tmp_path: Path, layout: str) -> None:
    folder = bench if layout == "segment" else bench / "masks"
    result = _invoke(["segeval", "--manifest", str(bench / "manifest.csv"), "--pred", str(folder),
                      "--gt", str(bench / "masks"), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "films scored: 24  not scored: 0" in result.output and "Dice mean 1.0000" in result.output


def test_segeval_names_both_layouts(bench: Path, tmp_path: Path) -> None:
    result = _invoke(["segeval", "--manifest", str(bench / "manifest.csv"), "--pred", str(tmp_path),
                      "--gt", str(bench / "masks"), "--out", str(tmp_path / "e")])
    _refused(result, "--pred", tmp_path)


def test_experiment_masks_dir_takes_either_layout(bench: Path, tmp_path: Path) -> None:
    from lungprior.experiment.config import ExperimentConfig
    from lungprior.experiment.runner import segmentation_stage
    from lungprior.experiment.stages import StageOutcome

    data = StageOutcome("data", tmp_path / "data", "h", False, {"manifest": str(bench / "manifest.csv")})
    for k, folder in enumerate([bench, bench / "masks"]):
        cfg = ExperimentConfig.model_validate({
            "dataset": {"kind": "manifest", "manifest": str(bench / "manifest.csv")},
            "segmentation": {"source": "masks_dir", "masks_dir": str(folder)},
        })
        seg = segmentation_stage(cfg, tmp_path / str(k), data)
        assert Path(seg.record["masks_dir"]) == (bench / "masks").resolve()
    cfg = ExperimentConfig.model_validate({
        "dataset": {"kind": "manifest", "manifest": str(bench / "manifest.csv")},
        "segmentation": {"source": "masks_dir", "masks_dir": str(tmp_path / "nope")},
    })
    with pytest.raises(LungpriorError, match=r"^masks_dir .*nope: folder not found; give a `lungprior segment`"):
        segmentation_stage(cfg, tmp_path / "bad", data)
