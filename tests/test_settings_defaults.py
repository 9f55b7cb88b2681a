"""One source for each default: MaskSpec for the masking settings, TrainConfig for training; the experiment file's
settings and `lungprior train`'s options are built from them and agree."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

from lungprior.classify.config import TrainConfig
from lungprior.cli.train import train_command
from lungprior.experiment.config import MaskSettings, TrainingSettings
from lungprior.masks.spec import DEFAULT_RADIUS_MM, MaskSpec

MASK_FIELDS = ("mode", "radius_mm", "radius_px", "hull", "alpha", "fill", "prior_weight")


def _defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def test_train_config_masks_as_mask_spec_does() -> None:
    spec, train = _defaults(MaskSpec), _defaults(TrainConfig)
    assert {k: train[k] for k in MASK_FIELDS} == {k: spec[k] for k in MASK_FIELDS}


def test_experiment_file_defaults_are_train_configs() -> None:
    train = _defaults(TrainConfig)
    fields = TrainingSettings.model_fields
    shared = [k for k in fields if k in train]
    assert len(shared) >= 13
    for name in shared:
        assert fields[name].get_default(call_default_factory=True) == train[name], name
    made = TrainingSettings()
    assert made.backbones == [train["backbone"]] and made.seeds == [train["seed"]]
    masks = MaskSettings.model_fields
    for name in MASK_FIELDS[1:]:
        assert masks[name].get_default() == _defaults(MaskSpec)[name], name


def test_train_options_default_to_train_configs() -> None:
    train = _defaults(TrainConfig)
    options = {name: p.default.default for name, p in inspect.signature(train_command).parameters.items()}
    shared = [k for k in options if k in train and k not in ("masks", "cache", "loggers")]  # paths, a list
    assert len(shared) >= 23
    for name in shared:
        assert options[name] == train[name], name


def test_a_default_radius_is_one_rule() -> None:
    loose = MaskSettings(mode="loose")
    assert loose.spec() == TrainConfig(manifest="m.csv", out="o", mode="loose").mask_spec()
    assert loose.spec().radius_mm == DEFAULT_RADIUS_MM and MaskSettings(mode="soft").spec().radius_mm is None
    assert MaskSettings(mode="crop", radius_px=4.0).spec().radius_mm is None


def test_reading_the_defaults_does_not_import_torch() -> None:
    code = ("import sys; import lungprior.cli.train, lungprior.classify.config\n"
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
