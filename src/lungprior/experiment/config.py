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
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from lungprior.classify.config import TrainConfig
from lungprior.data.runjson import validate
from lungprior.errors import LungpriorError, one_line
from lungprior.masks import MaskSpec

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
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PhantomSettings(_Strict):
    """The synthetic benchmark (`dataset.kind: phantom`); the same options as `lungprior phantom`."""

    n: int = Field(2000, ge=20)
    """Number of films."""
    size: int = Field(256, ge=64, le=2048)
    """Film width and height in pixels."""
    seed: int = 0
    """Random seed: same settings and seed give byte-identical films."""
    bias: float = Field(0.0, ge=0.0, le=1.0)
    """Shortcut strength in train/val: P(marker = label), in [0, 1]."""
    test_bias: float = Field(0.0, ge=0.0, le=1.0)
    """Shortcut strength in the test split."""
    val_bias: float | None = Field(None, ge=0.0, le=1.0)
    """Shortcut strength in the validation split (unset: `bias`, as in training)."""
    context: float = Field(0.0, ge=0.0, le=1.0)
    """Finding signal outside the tight lung outline, in [0, 1] (0: none added)."""
    conspicuity: float = Field(1.0, ge=0.25, le=4.0)
    """Lesion contrast multiplier in [0.25, 4] (1: the benchmark's own; 2: easier)."""
    finding_conspicuity: dict[str, float] | None = None
    """Per-finding contrast multiplier, e.g. `{Nodule: 4}` (others: `conspicuity`)."""
    markers: Literal["mixed", "far"] = "mixed"
    """Shortcut marker placement: `mixed` (two near the lungs) or `far` (all > 20 mm from them)."""
    prevalence: dict[str, float] | None = None
    """Per-finding prevalence, e.g. `{Mass: 0.1}` (others keep the defaults)."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of patients in validation."""
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction of patients in test."""

    @model_validator(mode="after")
    def _fractions(self) -> PhantomSettings:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1 (some patients must train)")
        return self


class NihSettings(_Strict):
    """NIH ChestX-ray14 (`dataset.kind: nih`); the same options as `lungprior nih`."""

    labels: str
    """`Data_Entry_2017_v2020.csv` of the NIH release."""
    images: str | None = None
    """Folder holding the PNGs (subfolders searched); unset: paths are `images/<name>`."""
    train_list: str | None = None
    """`train_val_list.txt` of the release (its official patient split)."""
    test_list: str | None = None
    """`test_list.txt` of the release."""
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Fraction of training patients held out for validation."""
    no_finding_ratio: float | None = Field(None, gt=0.0)
    """Keep R x the positives No Finding films per split, by whole patients (unset: all)."""
    views: list[Literal["PA", "AP"]] = ["PA", "AP"]
    """View positions kept."""
    seed: int = 0
    """Seed of the validation split and of the No Finding sample."""


class DatasetSettings(_Strict):
    """Where the films come from."""

    kind: Literal["phantom", "nih", "manifest"] = "phantom"
    """`phantom` (generated), `nih` (curated from the NIH release) or `manifest` (a manifest CSV as it is)."""
    phantom: PhantomSettings = PhantomSettings()
    """Settings of the synthetic benchmark (kind `phantom`)."""
    nih: NihSettings | None = None
    """Settings of the NIH curation (kind `nih`)."""
    manifest: str | None = None
    """Manifest CSV (kind `manifest`; a relative path is taken from the current folder)."""

    @model_validator(mode="after")
    def _needs(self) -> DatasetSettings:
        if self.kind == "nih" and self.nih is None:
            raise ValueError("kind 'nih' needs an 'nih:' section with at least 'labels'")
        if self.kind == "manifest" and not self.manifest:
            raise ValueError("kind 'manifest' needs 'manifest: PATH'")
        return self


class FinetuneSettings(_Strict):
    """Fine-tuning of the segmenter before inference (`segmentation.finetune`); see `lungprior finetune`."""

    data: str = "phantom"  # "phantom" (the experiment's benchmark) or a `lungprior segdata` folder
    """`phantom` (the experiment's benchmark) or a `lungprior segdata` folder."""
    epochs: int = Field(5, ge=1)
    """Fine-tuning epochs."""
    batch_size: int = Field(8, ge=1)
    """Images per batch."""
    max_train: int | None = Field(None, ge=1)
    """Use at most this many training films."""
    freeze_encoder: Literal["auto", "yes", "no"] = "auto"
    """Freeze the image encoder: `auto` (on the CPU), `yes` or `no`."""
    lr: float | None = Field(None, gt=0.0)
    """Learning rate (unset: the recipe's default)."""
    replay: str = "auto"  # rehearsal set: "auto" (synthetic films unless data is synthetic), "none" or a folder
    """Rehearsal set: `auto` (synthetic films unless the data are synthetic), `none` or a folder."""
    prior_prompts: float = Field(0.25, ge=0.0, le=1.0)  # views prompted with the cascade's prior boxes
    """Share of views prompted with the cascade's own coarse-pass boxes."""


class SegmentationSettings(_Strict):
    """Where the lung masks come from."""

    source: Literal["model", "ground_truth", "masks_dir", "chexmask"] = "model"
    """`model` (segment every film), `ground_truth` (the benchmark's lungs), `masks_dir` (a folder of masks) or
    `chexmask` (CheXmask's published NIH masks)."""
    masks_dir: str | None = None
    """A `lungprior segment` output folder or its `masks/` folder of `<image_id>.png` (source `masks_dir`;
    relative to the current folder)."""
    file: str | None = None  # source chexmask: the CheXmask table
    """The CheXmask table, e.g. `ChestX-Ray8.csv` (source `chexmask`)."""
    min_rca: float = Field(0.7, ge=0.0, le=1.0)
    """CheXmask: lowest reverse-classification-accuracy Dice kept."""
    backend: Literal["litemedsam", "medsam"] = "litemedsam"
    """Segmentation model: `litemedsam` or `medsam`."""
    checkpoint: str | None = None
    """Fine-tuned or MedSAM weights (unset: the backend's own; `medsam` needs one)."""
    finetune: FinetuneSettings | None = None
    """Fine-tune the segmenter first (unset: no fine-tuning)."""
    prompt: str = "auto"
    """`auto` (self-prompting cascade), `whole` (one whole-image box) or a CSV of boxes."""
    batch_size: int = Field(4, ge=1)
    """Images per encoder batch."""
    # source ground_truth: also segment this many test films with the model and report Dice against the truth
    check_films: int = Field(0, ge=0)
    """Source `ground_truth`: also segment this many test films with the model and report their Dice."""

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
    """One input to train on (`masks:` is a list of these); the same options as `lungprior train`."""

    mode: Literal["original", "tight", "loose", "soft", "nolung", "bbox", "crop", "prior-loss"]
    """Spatial prior: `original`, `tight`, `loose`, `soft`, `nolung`, `bbox`, `crop` or `prior-loss`."""
    radius_mm: float | None = Field(None, ge=0.0)
    """Loose / prior-loss: dilation radius in mm; bbox / crop: box margin (unset: 10 mm where used)."""
    radius_px: float | None = Field(None, ge=0.0)
    """Radius in pixels for films whose pixel spacing is unknown."""
    hull: bool = MaskSpec.hull
    """Loose: convex hull of each lung before dilating."""
    alpha: float = Field(MaskSpec.alpha, ge=0.0, le=1.0)
    """Soft: weight kept outside the lungs, in [0, 1]."""
    fill: Literal["zero", "mean"] = MaskSpec.fill  # type: ignore[assignment]
    """What replaces masked-out pixels: `zero` or `mean`."""
    prior_weight: float = Field(MaskSpec.prior_weight, ge=0.0)
    """Prior-loss: weight of the share of input-gradient energy outside the mask."""

    def spec(self) -> MaskSpec:
        spec = MaskSpec(self.mode, self.radius_mm, self.radius_px, self.hull, self.alpha, self.fill, self.prior_weight)
        return spec.with_default_radius()


class TrainingSettings(_Strict):
    """Classifier training, for every backbone x mask x seed; the same options as `lungprior train`."""

    backbones: list[BackboneName] = Field(default_factory=lambda: [TrainConfig.backbone], min_length=1)
    """timm model names, e.g. `[resnet50, densenet121]`."""
    seeds: list[int] = Field(default_factory=lambda: [TrainConfig.seed], min_length=1)
    """Training seeds; each backbone x mask is trained once per seed."""
    image_size: int = Field(TrainConfig.image_size, ge=16)
    """Input size in pixels (films are resized to S x S)."""
    epochs: int = Field(TrainConfig.epochs, ge=1)
    """Maximum number of epochs."""
    batch_size: int = Field(TrainConfig.batch_size, ge=1)
    """Images per batch and process."""
    lr: float = Field(TrainConfig.lr, gt=0.0)
    """AdamW learning rate (cosine decay over the epochs)."""
    weight_decay: float = Field(TrainConfig.weight_decay, ge=0.0)
    """AdamW weight decay."""
    patience: int = Field(TrainConfig.patience, ge=1)
    """Early stopping: epochs without a better validation AUROC."""
    pretrained: str = TrainConfig.pretrained
    """Initial weights: `none`, `imagenet` (timm) or a path to a state-dict file."""
    devices: Annotated[str, AfterValidator(_devices)] = TrainConfig.devices
    """Number of devices, or `auto`."""
    accelerator: Literal["auto", "cpu", "gpu"] = TrainConfig.accelerator  # type: ignore[assignment]
    """`auto`, `cpu` or `gpu`."""
    strategy: Literal["auto", "ddp"] = TrainConfig.strategy  # type: ignore[assignment]
    """`auto` or `ddp` (several GPUs or machines)."""
    num_nodes: int = Field(TrainConfig.num_nodes, ge=1)
    """Number of machines."""
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = TrainConfig.precision  # type: ignore[assignment]
    """`auto` (16-mixed on CUDA, 32 otherwise), `32`, `16-mixed` or `bf16-mixed`."""
    workers: int = Field(TrainConfig.workers, ge=0)
    """DataLoader worker processes."""
    limit_train: int | None = Field(None, ge=1)
    """Train on a seeded random subset of this many training films."""
    allow_qc_fail: bool = False
    """Keep films whose lung mask failed QC (default: they are left out and listed in `RUN/excluded.csv`)."""


class EvaluationSettings(_Strict):
    """Evaluation of every run on the test split; the same options as `lungprior evaluate`."""

    bootstrap: int = Field(1000, ge=10)
    """Patient-clustered bootstrap resamples for the CIs."""
    no_finding: Literal["max", "prod"] = "max"
    """No Finding score: `max` = 1 - max p; `prod` = prod(1 - p)."""
    cam: bool = True
    """Grad-CAM attention-in-lung and pointing game."""
    max_cam: int = Field(30, ge=1)
    """Positive films per class for Grad-CAM."""


class ExperimentConfig(_Strict):
    """The experiment file: one YAML describing a whole study."""

    name: SafeName = "experiment"
    """The study's name (default folder `experiments/<name>`)."""
    dataset: DatasetSettings = DatasetSettings()
    """Where the films come from."""
    segmentation: SegmentationSettings = SegmentationSettings()
    """Where the lung masks come from."""
    masks: list[MaskSettings] = Field(
        default_factory=lambda: [MaskSettings(mode="original"), MaskSettings(mode="loose", radius_mm=10.0),
                                 MaskSettings(mode="tight")],
        min_length=1,
    )
    """The inputs to train on, each compared with `original` (default: original, loose 10 mm, tight)."""
    training: TrainingSettings = TrainingSettings()
    """Classifier training."""
    evaluation: EvaluationSettings = EvaluationSettings()
    """Evaluation on the test split."""

    @model_validator(mode="after")
    def _checks(self) -> ExperimentConfig:
        if self.segmentation.source == "ground_truth" and self.dataset.kind != "phantom":
            raise ValueError("segmentation.source 'ground_truth' exists only for the phantom dataset")
        keys = [m.spec().key() for m in self.masks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"masks: duplicate mask settings {keys}")
        seeds = self.training.seeds
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"training.seeds: seed listed twice in {seeds} (each seed is one run per mask)")
        return self


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate an experiment YAML file; errors name the file and the key."""
    p = Path(path)
    return validate(ExperimentConfig, read_yaml_mapping(p, "experiment"), p)


def read_yaml_mapping(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The one YAML loader of experiment and regime files: safe, a key given twice in one mapping is an error
    (not the last value), and an empty file or a top level that is not a mapping is refused."""
    p = Path(path)
    if not p.is_file():
        raise LungpriorError(f"{p}: {what} file not found")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise LungpriorError(f"{p}: not valid YAML ({one_line(exc, 160)})") from None
    except UnicodeDecodeError:
        raise LungpriorError(f"{p}: not a text file (UTF-8)") from None
    if data is None:
        raise LungpriorError(f"{p}: the file is empty; write the study's settings (see configs/)")
    if not isinstance(data, dict):
        raise LungpriorError(f"{p}: the top level must be a mapping of settings")
    return data


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
