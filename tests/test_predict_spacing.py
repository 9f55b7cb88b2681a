"""`predict` refuses a batch-wide missing setting once, before any work: films without pixel spacing for a mask
sized in mm; `--spacing-mm` must be a positive number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lungprior.classify import TrainConfig
from lungprior.cli.main import app
from lungprior.errors import LungpriorError
from lungprior.predict import predict_films


def _loose_run(tmp_path: Path) -> Path:
    """A run folder as `predict` reads it (config and a model file that is never loaded here)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(manifest=str(tmp_path / "m.csv"), out=str(run), mode="loose", radius_mm=10.0)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "model.pt").write_bytes(b"")
    return run


def _films(tmp_path: Path) -> Path:
    films = tmp_path / "films"
    films.mkdir()
    for k in range(3):
        Image.fromarray((np.random.default_rng(k).random((64, 64)) * 255).astype(np.uint8)).save(films / f"{k}.png")
    return films


def test_films_without_spacing_for_a_mm_mask_are_one_error(tmp_path: Path) -> None:
    run, films = _loose_run(tmp_path), _films(tmp_path)
    with pytest.raises(LungpriorError, match=r"3 of 3 films state no pixel spacing .* 10 mm wide; pass --spacing-mm"):
        predict_films(run, [films], tmp_path / "out", seg_backend="litemedsam")
    assert not (tmp_path / "out" / "errors.csv").exists()  # nothing ran, no rows
    result = CliRunner().invoke(app, ["predict", str(films), "--run", str(run), "--out", str(tmp_path / "o2"),
                                      "--seg-backend", "litemedsam"])
    assert result.exit_code == 2 and "--spacing-mm" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("value", ["-1", "nan", "0", "inf"])
def test_spacing_must_be_a_positive_number(tmp_path: Path, value: str) -> None:
    run, films = _loose_run(tmp_path), _films(tmp_path)
    result = CliRunner().invoke(app, ["predict", str(films), "--run", str(run), "--out", str(tmp_path / "o"),
                                      "--spacing-mm", value])
    assert result.exit_code == 2 and "--spacing-mm must be a positive number" in result.output
