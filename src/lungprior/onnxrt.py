"""ONNX Runtime, the way lungprior uses it: telemetry off, and a model file that will not load is one line.

ONNX Runtime can collect platform telemetry (and keeps a device id and an events database under
`~/.cache/Microsoft/DeveloperTools/`). lungprior calls `onnxruntime.disable_telemetry_events()` before it
creates any session; set `LUNGPRIOR_ORT_TELEMETRY=1` to leave ONNX Runtime's default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lungprior.data.regular import require_regular_file
from lungprior.errors import LungpriorError, one_line
from lungprior.extras import require

TELEMETRY_ENV = "LUNGPRIOR_ORT_TELEMETRY"


def onnxruntime(hint: str = "use --engine torch") -> Any:
    """The `onnxruntime` module with its telemetry switched off (unless `$LUNGPRIOR_ORT_TELEMETRY=1`)."""
    ort = require("onnxruntime", hint)
    if os.environ.get(TELEMETRY_ENV, "").strip() != "1" and hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    return ort


def inference_session(path: str | os.PathLike[str], options: Any = None, what: str = "ONNX model") -> Any:
    """A CPU `InferenceSession` of `path`; a missing, corrupt or non-ONNX file is one line naming it."""
    ort = onnxruntime()
    require_regular_file(path, what)
    try:
        return ort.InferenceSession(str(Path(path)), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, ...)
        raise LungpriorError(f"{path}: not a loadable {what} ({one_line(exc, 160)})") from None
