"""Name -> backend factory registry (timm style): `register_backend`, `list_backends`, `create_backend`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch

from lungprior.errors import LungpriorError
from lungprior.segment.base import SegBackend

BackendFactory = Callable[[str | os.PathLike[str] | None, torch.device], SegBackend]
F = TypeVar("F", bound=BackendFactory)

_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str) -> Callable[[F], F]:
    """Decorator registering `factory(checkpoint, device) -> SegBackend` under `name`."""

    def decorator(factory: F) -> F:
        if name in _REGISTRY:
            raise LungpriorError(f"segmentation backend {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_backends() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(_REGISTRY)


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device that exists on this machine, or `LungpriorError`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LungpriorError(f"device {device!r}: not a torch device ({exc})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LungpriorError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LungpriorError(f"device {device!r}: MPS is not available on this machine")
    return dev


def create_backend(
    name: str = "litemedsam",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> SegBackend:
    """Build a registered backend; `checkpoint` None means the backend's default weights (if it has any)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise LungpriorError(f"unknown segmentation backend {name!r}; available: {', '.join(list_backends())}")
    return factory(checkpoint, resolve_device(device))
