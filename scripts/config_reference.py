"""Write docs/config.md, the experiment YAML key reference, from the pydantic schema.

    python scripts/config_reference.py > docs/config.md

Every key of `lungprior.experiment.config.ExperimentConfig` with its type, default, allowed range and description
(the field's docstring). tests/test_config_reference.py fails when the page and the schema disagree.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lungprior.experiment.config import ExperimentConfig

HEADER = """# Experiment file keys

`lungprior experiment FILE.yaml` reads one YAML file that describes a whole study. Every key is optional unless
marked *required*; unknown keys and bad values are refused with the key's path (`training.epochs: Input should
be greater than or equal to 1`). Worked examples: `configs/quickstart.yaml` (the README's quickstart),
`configs/looseness_sweep.yaml`, `configs/nih_paper.yaml`.

```yaml
name: my-study
dataset: {kind: phantom, phantom: {n: 500, size: 256, bias: 1.0}}
segmentation: {source: ground_truth}
masks: [{mode: original}, {mode: loose, radius_mm: 10}, {mode: tight}]
training: {backbones: [resnet10t], image_size: 96, epochs: 24}
evaluation: {bootstrap: 2000}
```

This page is generated from the schema (`src/lungprior/experiment/config.py`) by
`python scripts/config_reference.py > docs/config.md`.
"""

_BOUNDS = ((at.Ge, "≥", "ge"), (at.Gt, ">", "gt"), (at.Le, "≤", "le"), (at.Lt, "<", "lt"),
           (at.MinLen, "at least", "min_length"))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `annotation` (itself, `X | None` or `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def type_text(annotation: Any) -> str:
    """A short reading of a type: `int`, `float or null`, `list of str`, `one of: a, b`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_text(a) for a in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"mapping {type_text(args[0])} → {type_text(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[section](#{anchor(annotation)})"
    return getattr(annotation, "__name__", str(annotation))


def bounds_text(field: FieldInfo) -> str:
    """The field's allowed range, e.g. `≥ 64, ≤ 2048`."""
    parts = []
    for meta in field.metadata:
        for kind, sign, attr in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    """The default as YAML would write it, or *required*."""
    if field.is_required():
        return "*required*"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "*required*"
    if isinstance(value, BaseModel):
        return "see its section"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return "[" + ", ".join(json.dumps(v.model_dump(exclude_defaults=True)) for v in value) + "]"
    return f"`{json.dumps(value)}`".replace("`null`", "unset")


def anchor(model: type[BaseModel]) -> str:
    return _SECTIONS[model][0].replace(".", "").replace("[]", "")


def _sections(model: type[BaseModel], path: str, out: dict[type[BaseModel], tuple[str, str]]) -> None:
    out.setdefault(model, (path or "top level", path))
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        if inner is not None:
            suffix = "[]" if typing.get_origin(field.annotation) is list else ""
            _sections(inner, f"{path}.{name}{suffix}" if path else f"{name}{suffix}", out)


_SECTIONS: dict[type[BaseModel], tuple[str, str]] = {}
_sections(ExperimentConfig, "", _SECTIONS)


def section(model: type[BaseModel]) -> str:
    """One model as a markdown heading and table."""
    title, path = _SECTIONS[model]
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"## {title}", "", doc, "", "| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if not field.description:
            raise SystemExit(f"{model.__name__}.{name} has no description: add a docstring under the field")
        key = f"`{path}.{name}`" if path else f"`{name}`"
        desc = " ".join(field.description.split()).replace("|", "\\|")
        row = [key, type_text(field.annotation), default_text(field), bounds_text(field), desc]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def reference() -> str:
    """The whole page."""
    return HEADER + "\n" + "\n\n".join(section(m) for m in _SECTIONS) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
