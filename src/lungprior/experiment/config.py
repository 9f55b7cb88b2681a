"""The experiment file: one YAML describing a whole study, validated with clear errors.

Unknown keys and bad values are refused with the offending key's path, e.g.
`experiment.yaml: training.epochs: Input should be greater than or equal to 1`. Duplicate keys and an empty
file are errors; names that become folder names (`name`, `training.backbones`) must be safe slugs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from lungprior.errors import LungpriorError, one_line
from lungprior.masks import RADIUS_MODES, MaskSpec
from lungprior.masks.spec import DEFAULT_RADIUS_MM

_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def _slug(value: str) -> str:
    """A name safe as one folder name: letters, digits, '.', '_', '-', not starting with '.' (no '/', no '..')."""
    if not _SLUG.fullmatch(value) or ".." in value:
        raise ValueError(f"{value!r} is not a safe name: use letters, digits, '.', '_' and '-' (no '/' or '..')")
    return value


def _backbone(value: str) -> str:
    _slug(value)
    import timm  # only when a file names backbones

    if not timm.is_model(value):
        raise ValueError(f"unknown backbone {value!r} (see timm.list_models())")
    return value


def _devices(value: str) -> str:
    text = str(value).strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise ValueError(f"must be a positive number or 'auto', got {value!r}")
    return text


SafeName = Annotated[str, AfterValidator(_slug)]
BackboneName = Annotated[str, AfterValidator(_backbone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhantomSettings(_Strict):
    n: int = Field(2000, ge=20)
    size: int = Field(256, ge=64, le=2048)
    seed: int = 0
    bias: float = Field(0.0, ge=0.0, le=1.0)
    test_bias: float = Field(0.0, ge=0.0, le=1.0)
    val_bias: float | None = Field(None, ge=0.0, le=1.0)
    context: float = Field(0.0, ge=0.0, le=1.0)
    conspicuity: float = Field(1.0, ge=0.25, le=4.0)
    finding_conspicuity: dict[str, float] | None = None
    markers: Literal["mixed", "far"] = "mixed"
    prevalence: dict[str, float] | None = None
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _fractions(self) -> PhantomSettings:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 (some patients must train)")
        return self


class NihSettings(_Strict):
    labels: str
    images: str | None = None
    train_list: str | None = None
    test_list: str | None = None
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    no_finding_ratio: float | None = Field(None, gt=0.0)
    views: list[Literal["PA", "AP"]] = ["PA", "AP"]
    seed: int = 0


class DatasetSettings(_Strict):
    kind: Literal["phantom", "nih", "manifest"] = "phantom"
    phantom: PhantomSettings = PhantomSettings()
    nih: NihSettings | None = None
    manifest: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> DatasetSettings:
        if self.kind == "nih" and self.nih is None:
            raise ValueError("kind 'nih' needs an 'nih:' section with at least 'labels'")
        if self.kind == "manifest" and not self.manifest:
            raise ValueError("kind 'manifest' needs 'manifest: PATH'")
        return self


class FinetuneSettings(_Strict):
    data: str = "phantom"  # "phantom" (the experiment's benchmark) or a `lungprior segdata` folder
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(8, ge=1)
    max_train: int | None = Field(None, ge=1)
    freeze_encoder: Literal["auto", "yes", "no"] = "auto"
    lr: float | None = Field(None, gt=0.0)
    replay: str = "auto"  # rehearsal set: "auto" (synthetic films unless data is synthetic), "none" or a folder
    prior_prompts: float = Field(0.25, ge=0.0, le=1.0)  # views prompted with the cascade's prior boxes


class SegmentationSettings(_Strict):
    source: Literal["model", "ground_truth", "masks_dir", "chexmask"] = "model"
    masks_dir: str | None = None
    file: str | None = None  # source chexmask: the CheXmask table
    min_rca: float = Field(0.7, ge=0.0, le=1.0)
    backend: Literal["litemedsam", "medsam"] = "litemedsam"
    checkpoint: str | None = None
    finetune: FinetuneSettings | None = None
    prompt: str = "auto"
    batch_size: int = Field(4, ge=1)
    # source ground_truth: also segment this many test films with the model and report Dice against the truth
    check_films: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _needs(self) -> SegmentationSettings:
        if self.check_films and self.source != "ground_truth":
            raise ValueError("check_films is for source 'ground_truth' (a model source segments every film)")
        if self.source == "masks_dir" and not self.masks_dir:
            raise ValueError("source 'masks_dir' needs 'masks_dir: PATH'")
        if self.source == "chexmask" and not self.file:
            raise ValueError("source 'chexmask' needs 'file: PATH' (a CheXmask table, e.g. ChestX-Ray8.csv)")
        if self.backend == "medsam" and self.source == "model" and not self.checkpoint:
            raise ValueError("backend 'medsam' needs 'checkpoint: medsam_vit_b.pth'")
        return self


class MaskSettings(_Strict):
    mode: Literal["original", "tight", "loose", "soft", "nolung", "bbox", "crop", "prior-loss"]
    radius_mm: float | None = Field(None, ge=0.0)
    radius_px: float | None = Field(None, ge=0.0)
    hull: bool = False
    alpha: float = Field(0.3, ge=0.0, le=1.0)
    fill: Literal["zero", "mean"] = "zero"
    prior_weight: float = Field(1.0, ge=0.0)

    def spec(self) -> MaskSpec:
        default = self.mode in RADIUS_MODES and self.radius_px is None and self.radius_mm is None
        radius = DEFAULT_RADIUS_MM if default else self.radius_mm
        return MaskSpec(self.mode, radius, self.radius_px, self.hull, self.alpha, self.fill, self.prior_weight)


class TrainingSettings(_Strict):
    backbones: list[BackboneName] = Field(default_factory=lambda: ["resnet50"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    image_size: int = Field(224, ge=16)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    patience: int = Field(5, ge=1)
    pretrained: str = "none"
    devices: Annotated[str, AfterValidator(_devices)] = "auto"
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    strategy: Literal["auto", "ddp"] = "auto"
    num_nodes: int = Field(1, ge=1)
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    workers: int = Field(0, ge=0)
    limit_train: int | None = Field(None, ge=1)
    allow_qc_fail: bool = False  # keep films whose lung mask failed QC (default: left out, in excluded.csv)


class EvaluationSettings(_Strict):
    bootstrap: int = Field(1000, ge=10)
    no_finding: Literal["max", "prod"] = "max"
    cam: bool = True
    max_cam: int = Field(30, ge=1)


class ExperimentConfig(_Strict):
    name: SafeName = "experiment"
    dataset: DatasetSettings = DatasetSettings()
    segmentation: SegmentationSettings = SegmentationSettings()
    masks: list[MaskSettings] = Field(
        default_factory=lambda: [MaskSettings(mode="original"), MaskSettings(mode="loose", radius_mm=10.0),
                                 MaskSettings(mode="tight")],
        min_length=1,
    )
    training: TrainingSettings = TrainingSettings()
    evaluation: EvaluationSettings = EvaluationSettings()

    @model_validator(mode="after")
    def _checks(self) -> ExperimentConfig:
        if self.segmentation.source == "ground_truth" and self.dataset.kind != "phantom":
            raise ValueError("segmentation.source 'ground_truth' exists only for the phantom dataset")
        keys = [m.spec().key() for m in self.masks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"masks: duplicate mask settings {keys}")
        return self


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate an experiment YAML file; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise LungpriorError(f"{p}: experiment file not found")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise LungpriorError(f"{p}: not valid YAML ({one_line(exc, 160)})") from None
    if data is None:
        raise LungpriorError(f"{p}: the file is empty; write the study's settings (see configs/)")
    if not isinstance(data, dict):
        raise LungpriorError(f"{p}: the top level must be a mapping of settings")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise LungpriorError(f"{p}: {where}: {first['msg']}{more}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (instead of keeping the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
