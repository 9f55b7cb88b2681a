"""A run folder's JSON files are untrusted input: each is checked against a schema before it is used.

Checked: types, finite numbers (no NaN or Infinity) and, where the file has a fixed set of keys, known keys.
A failure is a one-line `LungpriorError` naming the file and the key (`metrics.json: macro_auroc: ...`).
`first_non_finite` finds a NaN or an infinity in any JSON-like value (what `json` would write as `NaN`, which
is not JSON).
"""

from __future__ import annotations

import json
import math
import os
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lungprior.data.regular import open_regular
from lungprior.errors import LungpriorError, one_line

_OPEN = ConfigDict(extra="allow", allow_inf_nan=False)


def read_json_file(path: str | os.PathLike[str], *, allow_nan: bool = False) -> Any:
    """Parse a JSON file (NaN and Infinity refused unless `allow_nan`: the schema then checks the keys that are
    used); one line naming the file when it cannot be read."""
    p = Path(path)
    try:
        with open_regular(p) as fh:  # a FIFO in place of the file is refused, not waited on
            text = fh.read().decode("utf-8")
        return json.loads(text) if allow_nan else json.loads(text, parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError) as exc:
        raise LungpriorError(f"{p}: cannot read ({one_line(exc, 120)})") from None
    except ValueError as exc:
        raise LungpriorError(f"{p}: not valid JSON ({one_line(exc, 120)})") from None


def validate(model: type[BaseModel], data: Any, where: str | os.PathLike[str], prefix: str = "") -> Any:
    """`model.model_validate(data)`, or one line: "WHERE: prefix.key.path: message" (a non-finite number first)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = next((e for e in errors if e["type"] == "finite_number"), errors[0])
        parts = [prefix] if prefix else []
        key = ".".join([*parts, *_key_path(data, first["loc"])]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise LungpriorError(f"{where}: {key}: {first['msg']}{more}") from None


def _key_path(data: Any, loc: tuple[Any, ...]) -> list[str]:
    """The part of a pydantic error location that names keys of `data` (union members' type names dropped)."""
    path: list[str] = []
    for n, part in enumerate(loc):
        inside = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if inside:
            data = data[part]
            path.append(str(part))
        elif isinstance(data, dict) and n == len(loc) - 1:
            path.append(str(part))  # an unknown or a missing key
        elif not isinstance(data, dict):
            break  # the value itself is wrong; the rest names union members
    return path


def first_non_finite(value: Any, key: str = "") -> str | None:
    """The key path of the first NaN or infinite number in a JSON-like value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return key or "(top level)"
    if isinstance(value, dict):
        items: typing.Iterable[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for k, v in items:
        found = first_non_finite(v, f"{key}.{k}" if key else k)
        if found is not None:
            return found
    return None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


class _Estimate(BaseModel):
    """A metric with its bootstrap interval, as `lungprior evaluate` writes it (undefined values are null)."""

    model_config = _OPEN
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    n_used: int | None = None
    n_skipped: int | None = None


_Metric = _Estimate | float | None


class _Scores(BaseModel):
    model_config = _OPEN
    auroc: _Metric = None
    auprc: _Metric = None


class _Metrics(BaseModel):
    model_config = _OPEN
    split: str = "test"
    n_images: int | None = None
    n_patients: int | None = None
    bootstrap: dict[str, Any] | None = None
    macro_auroc: _Metric = None
    per_class: dict[str, _Scores] | None = None
    no_finding: _Scores | None = None


def check_metrics(data: Any, where: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's `metrics.json` checked where the model card reads it: types, finite numbers (the rest of the file
    is not used by the card)."""
    validate(_Metrics, data, where)
    return dict(data)
