"""Fine-tuning settings (`FinetuneConfig`, JSON round-trip) and the per-backend recipes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from lungprior.data.atomic import write_json
from lungprior.errors import LungpriorError

FREEZE_CHOICES: tuple[str, ...] = ("auto", "yes", "no")
ACCELERATOR_CHOICES: tuple[str, ...] = ("auto", "cpu", "gpu")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "32", "16-mixed", "bf16-mixed")


@dataclass(frozen=True)
class Recipe:
    """One backend's optimiser settings: AdamW with a one-cycle schedule peaking at `lr` (per parameter group)."""

    lr: float
    weight_decay: float
    iou_loss: bool  # add MSE between the IoU head and the actual IoU (LiteMedSAM)
    train_prompt_encoder: bool
    encoder_lr_factor: float = 0.1  # a trained image encoder learns at this fraction of `lr`


RECIPES: dict[str, Recipe] = {
    "litemedsam": Recipe(lr=2e-4, weight_decay=0.01, iou_loss=True, train_prompt_encoder=True),
    "medsam": Recipe(lr=1e-4, weight_decay=0.01, iou_loss=False, train_prompt_encoder=False),
}

REPLAY_AUTO, REPLAY_NONE = "auto", "none"

# (epochs, views per film) when not given: the full recipe on a GPU; a budget that fits 30 minutes on 2 CPU cores
AUTO_BUDGET: dict[str, tuple[int, int]] = {"gpu": (12, 6), "cpu": (6, 2)}


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that determines a fine-tuning run; written to OUT/config.json and checked on rerun.

    `lr` None means the backend's recipe value. `freeze_encoder` "auto" freezes the image encoder on CPU
    (decoder-only training on cached embeddings of every view; a deviation from the full recipe, made because
    the encoder forward pass takes seconds per image on a CPU) and trains it on a GPU. `epochs` and `views`
    None mean `AUTO_BUDGET` for the accelerator. Each box side is jittered by U(-jitter_in, jitter_out) of the
    box's size; a fraction `prior_prompts` of the training views (with two lungs) is prompted with the auto
    cascade's hemithorax prior boxes instead, the boxes of its coarse pass. `batch_size` counts views (each gives
    one prompt per lung: 8 views, 16 prompts). `replay`, a second segdata or synthetic-benchmark folder, adds its
    training films (at most `replay_max`) to the training set: rehearsal of a domain the base model already
    handles, so that fine-tuning does not unlearn it. "auto" rehearses the synthetic films of
    `data.REHEARSAL`, generated into OUT/replay, unless `data` is itself synthetic; "none" (or None) trains on
    `data` alone.
    """

    data: str
    out: str
    backend: str = "litemedsam"
    checkpoint: str | None = None
    epochs: int | None = None
    batch_size: int = 8
    lr: float | None = None
    views: int | None = None
    jitter_in: float = 0.04
    jitter_out: float = 0.10
    prior_prompts: float = 0.25
    freeze_encoder: str = "auto"
    max_train: int | None = None
    replay: str | None = REPLAY_AUTO
    replay_max: int | None = None
    devices: int | str = "auto"
    accelerator: str = "auto"
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in RECIPES:
            raise LungpriorError(f"--backend {self.backend!r}: choose one of {', '.join(RECIPES)}")
        _choice("--freeze-encoder", self.freeze_encoder, FREEZE_CHOICES)
        _choice("--accelerator", self.accelerator, ACCELERATOR_CHOICES)
        _choice("--precision", self.precision, PRECISION_CHOICES)
        if self.epochs is not None:
            _at_least("--epochs", self.epochs, 1)
        if self.views is not None:
            _at_least("--views", self.views, 1)
        _at_least("--batch-size", self.batch_size, 1)
        for option, value in (("--jitter-in", self.jitter_in), ("--jitter-out", self.jitter_out)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.5:
                raise LungpriorError(f"{option} must be a fraction of the box in [0, 0.5], got {value!r}")
        if isinstance(self.prior_prompts, bool) or not isinstance(self.prior_prompts, (int, float)) or not (
                0 <= self.prior_prompts <= 1):
            raise LungpriorError(f"--prior-prompts must be a fraction in [0, 1], got {self.prior_prompts!r}")
        if self.max_train is not None:
            _at_least("--max-train", self.max_train, 1)
        if self.replay_max is not None:
            _at_least("--replay-max", self.replay_max, 1)
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise LungpriorError(f"--lr must be in (0, 1), got {self.lr!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise LungpriorError(f"--seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "devices", parse_devices(self.devices))
        object.__setattr__(self, "data", _absolute(self.data))
        object.__setattr__(self, "out", _absolute(self.out))
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", _absolute(self.checkpoint))
        if self.replay is None or self.replay == REPLAY_NONE:
            object.__setattr__(self, "replay", REPLAY_NONE)
        elif self.replay != REPLAY_AUTO:
            object.__setattr__(self, "replay", _absolute(self.replay))

    @property
    def recipe(self) -> Recipe:
        """The backend's recipe with `lr` overridden when given."""
        base = RECIPES[self.backend]
        return base if self.lr is None else replace(base, lr=float(self.lr))

    def budget(self, accelerator: str) -> tuple[int, int]:
        """(epochs, views) of a run on `accelerator` ("cpu" or "gpu"): the given values, else `AUTO_BUDGET`."""
        epochs, views = AUTO_BUDGET["gpu" if accelerator == "gpu" else "cpu"]
        return (epochs if self.epochs is None else self.epochs), (views if self.views is None else self.views)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LungpriorError(f"fine-tuning config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> FinetuneConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LungpriorError(f"{path}: cannot read fine-tuning config ({exc})") from None
        if not isinstance(data, dict):
            raise LungpriorError(f"{path}: fine-tuning config must be a JSON object")
        return cls.from_dict(data)


def parse_devices(value: int | str) -> int | str:
    """"auto" or a positive device count (given as int or digits)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise LungpriorError(f"--devices must be 'auto' or a positive integer, got {value!r}") from None
    if count < 1 or isinstance(value, bool):
        raise LungpriorError(f"--devices must be 'auto' or a positive integer, got {value!r}")
    return count


def resolve_accelerator(accelerator: str) -> str:
    """"cpu" or "gpu" (CUDA); "auto" picks the GPU when CUDA is available."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise LungpriorError("--accelerator gpu: CUDA is not available on this machine")
    return accelerator


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning precision: "auto" is 16-bit mixed precision on a GPU, 32-bit on the CPU."""
    if precision == "auto":
        return "16-mixed" if accelerator == "gpu" else "32-true"
    if precision == "16-mixed" and accelerator == "cpu":
        raise LungpriorError("--precision 16-mixed needs a GPU; use 32 or bf16-mixed on the CPU")
    return "32-true" if precision == "32" else precision


def resolve_freeze(freeze_encoder: str, accelerator: str) -> bool:
    """Whether the image encoder is frozen: "auto" freezes it on the CPU only."""
    if freeze_encoder == "auto":
        return accelerator == "cpu"
    return freeze_encoder == "yes"


def device_count(devices: int | str, accelerator: str) -> int:
    """How many devices Lightning will use."""
    if devices != "auto":
        return int(devices)
    return max(torch.cuda.device_count(), 1) if accelerator == "gpu" else 1


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise LungpriorError(f"{option} {value!r}: choose one of {', '.join(choices)}")


def _at_least(option: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise LungpriorError(f"{option} must be an integer >= {low}, got {value!r}")


def _absolute(path: str | os.PathLike[str]) -> str:
    return str(Path(path).expanduser().resolve())
