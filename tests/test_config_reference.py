"""docs/config.md lists every experiment YAML key as the schema defines it (regenerate with
`python scripts/config_reference.py > docs/config.md`)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from lungprior.experiment.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "config.md"


def _generator():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_matches_the_schema() -> None:
    expected = _generator().reference()
    assert PAGE.read_text(encoding="utf-8") == expected, (
        "docs/config.md is out of date: python scripts/config_reference.py > docs/config.md")


def test_every_key_is_on_the_page_with_its_default() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert "| `training.epochs` | int | `20` | ≥ 1 |" in text
    assert "| `dataset.nih.labels` | str | *required* |" in text
    for name in ExperimentConfig.model_fields:
        assert f"| `{name}` |" in text


def test_the_pages_example_is_a_valid_experiment_file() -> None:
    block = re.search(r"```yaml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert block is not None
    cfg = ExperimentConfig.model_validate(yaml.safe_load(block.group(1)))
    assert [m.mode for m in cfg.masks] == ["original", "loose", "tight"]


def test_a_new_key_without_description_is_refused() -> None:
    from pydantic import BaseModel, ConfigDict

    class Undocumented(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        x: int = 1

    gen = _generator()
    gen._SECTIONS[Undocumented] = ("undocumented", "undocumented")
    try:
        gen.section(Undocumented)
    except SystemExit as exc:
        assert "Undocumented.x has no description" in str(exc)
    else:
        raise AssertionError("a key without a description was accepted")
