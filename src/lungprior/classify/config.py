"""`TrainConfig`: every setting of a classification run, validated, with a JSON round trip."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from lungprior.errors import LungpriorError
from lungprior.masks import MODES, RADIUS_MODES, MaskSpec

ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu")
STRATEGIES: tuple[str, ...] = ("auto", "ddp")
PRECISIONS: tuple[str, ...] = ("auto", "32", "16-mixed", "bf16-mixed")
#: Settings that may change when a killed or finished run is continued; all others must match the run's own.
RUNTIME_FIELDS: tuple[str, ...] = (
    "out", "epochs", "devices", "accelerator", "strategy", "num_nodes", "precision", "workers", "cache", "loggers",
)
LOGGERS: tuple[str, ...] = ("tensorboard", "csv", "mlflow", "wandb")
CACHE_DIRNAME = ".lungprior-cache"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `lungprior train` (see the CLI's help for each field).

    `masks` defaults to the `masks/` folder beside the manifest (the synthetic benchmark's own lung masks);
    `cache` defaults to `<manifest folder>/.lungprior-cache`; a loose, bbox, crop or prior-loss mask without a
    radius uses 10 mm; `prior_weight` is the `prior-loss` penalty's weight.
    `batch_size` is per process: DDP with W processes (devices x num_nodes) trains as one process with a batch
    of W x batch_size would (same samples per step, same augmentation, BatchNorm over the global batch).
    """

    manifest: str
    out: str
    mode: str = MaskSpec.mode  # the masking settings' defaults are MaskSpec's
    masks: str | None = None
    radius_mm: float | None = MaskSpec.radius_mm
    radius_px: float | None = MaskSpec.radius_px
    hull: bool = MaskSpec.hull
    alpha: float = MaskSpec.alpha
    fill: str = MaskSpec.fill
    prior_weight: float = MaskSpec.prior_weight
    backbone: str = "resnet50"
    image_size: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    patience: int = 5
    pretrained: str = "none"
    devices: str = "auto"
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"
    workers: int = 0
    seed: int = 0
    limit_train: int | None = None
    cache: str | None = None
    loggers: str = "csv,tensorboard"

    def __post_init__(self) -> None:
        object.__setattr__(self, "manifest", str(self.manifest))
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "devices", str(self.devices).strip().lower())
        for name in ("masks", "cache"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        if self.mode not in MODES:
            raise LungpriorError(f"unknown --mode {self.mode!r}; choose from {', '.join(MODES)}")
        self.mask_spec()  # validates fill, alpha and radii
        _check(16 <= self.image_size <= 4096, f"--image-size must be between 16 and 4096, got {self.image_size}")
        _check(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        _check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        _check(self.patience >= 1, f"--patience must be at least 1, got {self.patience}")
        _check(self.num_nodes >= 1, f"--num-nodes must be at least 1, got {self.num_nodes}")
        _check(self.workers >= 0, f"--workers must be >= 0, got {self.workers}")
        _check(self.limit_train is None or self.limit_train >= 1, f"--limit-train must be >= 1, got {self.limit_train}")
        _check(bool(self.backbone.strip()), "--backbone must name a timm model, e.g. resnet50")
        _check(bool(self.pretrained.strip()), "--pretrained must be none, imagenet or a file path")
        _check(
            self.devices == "auto" or (self.devices.isdigit() and int(self.devices) >= 1),
            f"--devices must be a positive number or 'auto', got {self.devices!r}",
        )
        for name in self.logger_names():
            _choice("logger", name, LOGGERS)
        _choice("accelerator", self.accelerator, ACCELERATORS)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("precision", self.precision, PRECISIONS)

    def logger_names(self) -> list[str]:
        """The experiment loggers asked for (`loggers` is comma-separated)."""
        return [n.strip().lower() for n in self.loggers.split(",") if n.strip()]

    def mask_spec(self) -> MaskSpec:
        """The masking mode and parameters as a `MaskSpec`."""
        return MaskSpec(
            mode=self.mode, radius_mm=self.radius_mm, radius_px=self.radius_px, hull=self.hull, alpha=self.alpha,
            fill=self.fill, prior_weight=self.prior_weight,
        ).with_default_radius()

    def resolved(self) -> TrainConfig:
        """A copy with absolute paths and the defaults filled in (masks folder, cache folder, loose radius)."""
        manifest = Path(self.manifest).expanduser().resolve()
        masks = self.masks
        if masks is None and (manifest.parent / "masks").is_dir():
            masks = str(manifest.parent / "masks")
        spec = self.mask_spec()
        return replace(
            self,
            manifest=str(manifest),
            out=str(Path(self.out).expanduser().resolve()),
            masks=str(Path(masks).expanduser().resolve()) if masks is not None else None,
            cache=str(Path(self.cache or manifest.parent / CACHE_DIRNAME).expanduser().resolve()),
            radius_mm=spec.radius_mm if self.mode in RADIUS_MODES else self.radius_mm,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. `config.json`); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LungpriorError(f"unknown training setting(s): {', '.join(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise LungpriorError(f"incomplete training settings: {exc}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> TrainConfig:
        """Read a `config.json` written by `train`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LungpriorError(f"{p}: file not found") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LungpriorError(f"{p}: not a readable config ({exc})") from None
        if not isinstance(data, dict):
            raise LungpriorError(f"{p}: not a training config (expected a JSON object)")
        return cls.from_dict(data)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise LungpriorError(message)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LungpriorError(f"unknown --{name} {value!r}; choose from {', '.join(choices)}")
