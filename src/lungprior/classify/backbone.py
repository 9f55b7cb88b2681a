"""Backbones from timm: one grey input channel, five outputs, optional ImageNet or file weights."""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import adapt_input_conv, get_pretrained_cfg
from torch import nn

from lungprior.checkpoints import load_tensor_file
from lungprior.errors import LungpriorError, one_line
from lungprior.labels import FINDINGS

log = logging.getLogger("lungprior.classify")

_PREFIXES = ("", "module.", "model.", "module.model.")
# Old torchvision DenseNet files name layers "norm.1"; today's torchvision and timm use "norm1".
_OLD_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


@dataclass
class WeightsReport:
    """What loading a weights file did: tensors loaded, adapted (3 -> 1 channel), dropped and unmatched."""

    path: str
    loaded: int
    adapted: list[str] = field(default_factory=list)
    dropped_classifier: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_backbone(name: str) -> None:
    """Raise a `LungpriorError` listing close matches when timm does not know `name`."""
    if timm.is_model(name):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    close += [n for n in timm.list_models(f"*{name}*") if n not in close][: max(0, 5 - len(close))]
    hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
    raise LungpriorError(f"unknown backbone {name!r}{hint}")


def normalisation(name: str) -> tuple[float, float]:
    """Mean and std for grey input: the pretrained config's RGB values averaged over channels."""
    cfg = get_pretrained_cfg(name)
    mean = cfg.mean if cfg is not None and cfg.mean else IMAGENET_DEFAULT_MEAN
    std = cfg.std if cfg is not None and cfg.std else IMAGENET_DEFAULT_STD
    return float(sum(mean) / len(mean)), float(sum(std) / len(std))


def create_backbone(
    name: str, pretrained: str = "none", image_size: int | None = None
) -> tuple[nn.Module, WeightsReport | None]:
    """A timm model with `in_chans=1`, `num_classes=5`; `pretrained` is none, imagenet or a weights file.

    Models with a fixed input size (ViTs, Swin...) are built for `image_size` when given.
    """
    check_backbone(name)
    kwargs: dict[str, Any] = {"num_classes": len(FINDINGS), "in_chans": 1}
    cfg = get_pretrained_cfg(name)
    if image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size
    if pretrained.lower() == "none":
        return timm.create_model(name, pretrained=False, **kwargs), None
    if pretrained.lower() == "imagenet":
        try:
            return timm.create_model(name, pretrained=True, **kwargs), None
        except Exception as exc:
            raise LungpriorError(
                f"ImageNet weights for {name} are not in the local cache and could not be downloaded "
                f"({one_line(exc, 200)}); fetch them on a connected machine or pass --pretrained PATH "
                "(a torchvision or timm state dict file)"
            ) from None
    model = timm.create_model(name, pretrained=False, **kwargs)
    return model, load_weights_file(model, pretrained)


def load_weights_file(model: nn.Module, path: str | os.PathLike[str]) -> WeightsReport:
    """Load a torchvision- or timm-style state dict into `model`, adapting the first conv to one channel.

    The file's classifier is dropped (the model has five outputs); tensors whose names or shapes do not
    match are reported and skipped. A file that matches nothing raises a `LungpriorError`.
    """
    p = Path(path)
    obj = load_tensor_file(p, "--pretrained file", "use none, imagenet or a torchvision or timm state dict file")
    state = _tensors(obj)
    target = model.state_dict()
    state = _best_prefix(state, target)
    classifier = _names(getattr(model, "pretrained_cfg", {}).get("classifier"))
    report = WeightsReport(path=str(p), loaded=0)
    load: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if any(key == c or key.startswith(c + ".") for c in classifier):
            report.dropped_classifier.append(key)
        elif key not in target:
            report.unexpected.append(key)
        elif value.shape == target[key].shape:
            load[key] = value.to(target[key].dtype)
        elif _is_input_conv(value, target[key]):
            load[key] = adapt_input_conv(target[key].shape[1], value.float()).to(target[key].dtype)
            report.adapted.append(key)
        else:
            report.shape_mismatch.append(key)
    if not load:
        raise LungpriorError(
            f"--pretrained {p}: no tensor matches backbone {type(model).__name__} "
            f"({len(state)} tensors in the file, e.g. {next(iter(state), 'none')})"
        )
    model.load_state_dict(load, strict=False)
    report.loaded = len(load)
    report.missing = [k for k in target if k not in load and not any(k.startswith(c + ".") for c in classifier)]
    log.info("loaded %d tensors from %s (first conv adapted: %s)", report.loaded, p, report.adapted or "no")
    if report.missing or report.unexpected or report.shape_mismatch:
        log.warning(
            "weights file %s: %d missing, %d unexpected, %d shape-mismatched tensors (e.g. %s)",
            p, len(report.missing), len(report.unexpected), len(report.shape_mismatch),
            (report.missing + report.unexpected + report.shape_mismatch)[:3],
        )
    return report


def _tensors(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a file: the dict itself or its 'state_dict' / 'model' / 'model_state_dict'."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return {_OLD_DENSENET.sub(r"\1\2", k): v for k, v in tensors.items()}
    raise LungpriorError("the --pretrained file holds no state dict (a mapping of names to tensors)")


def _best_prefix(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the wrapper prefix ('module.', 'model.') under which most names match the model."""
    best, best_hits = state, -1
    for prefix in _PREFIXES:
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        hits = sum(k in target for k in stripped)
        if hits > best_hits:
            best, best_hits = stripped, hits
    return best


def _is_input_conv(value: torch.Tensor, target: torch.Tensor) -> bool:
    return (
        value.ndim == 4 and target.ndim == 4 and value.shape[0] == target.shape[0]
        and value.shape[2:] == target.shape[2:] and value.shape[1] == 3 and target.shape[1] == 1
    )


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()

