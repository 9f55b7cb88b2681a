"""The run folder: its config, the result record (`efficiency.json`), the exported weights and history.

Layout of RUN_DIR: `config.json`, `model.pt` (best weights, plain state dict), `checkpoints/{best,last}.ckpt`,
`history.csv` (one row per epoch), `excluded.csv` (films left out for want of a usable lung mask: image_id,
split, reason), `efficiency.json` (the `TrainResult`, written last: a run is finished
when it exists), `pretrained.json` (what a `--pretrained PATH` file loaded), `csv/` and `tensorboard/` logs.
"""

from __future__ import annotations

import json
import math
import os
import resource
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lungprior.checkpoints import load_tensor_file
from lungprior.classify.config import RUNTIME_FIELDS, TrainConfig
from lungprior.classify.memory import PeakRSS
from lungprior.data.atomic import atomic_open, atomic_path, write_json
from lungprior.data.claim import claim_folder
from lungprior.errors import LungpriorError
from lungprior.layout import CONFIG, EFFICIENCY, EXCLUDED, MODEL


@dataclass
class TrainResult:
    """What a run achieved and cost (also `RUN_DIR/efficiency.json`)."""

    run_dir: str
    epochs_run: int
    best_epoch: int
    best_val_auroc: float
    val_auroc_per_finding: dict[str, float] = field(default_factory=dict)
    seconds_per_epoch: float = float("nan")
    seconds_to_best: float = float("nan")
    train_images_per_s: float = float("nan")
    peak_memory_mb: float = float("nan")
    peak_memory_source: str = "rss"
    cache_build_seconds: float = 0.0
    cache_built_now: bool = False
    cache_dir: str = ""
    stopped_early: bool = False
    resumed: bool = False
    already_finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: (float("nan") if v is None and k != "run_dir" else v) for k, v in data.items() if k in known})


def claim_run_dir(run_dir: Path, cfg: TrainConfig) -> TrainConfig | None:
    """Check that `run_dir` is new, empty or holds this run; return the stored config (None when new).

    A run with other settings (outside `RUNTIME_FIELDS`) raises a `LungpriorError` naming them. The config is
    written later, by the lead process, once the run's inputs are checked.
    """
    old = claim_folder(
        run_dir, CONFIG, cfg.to_dict(), "a run", ignore=RUNTIME_FIELDS,
        upgrade=lambda stored: TrainConfig.from_dict(stored).to_dict(), record=False,
        fix="use a new --out or the run's own settings",
    )
    return None if old is None else TrainConfig.from_dict(old)


def finished_result(run_dir: Path, cfg: TrainConfig) -> TrainResult | None:
    """The stored result when the run is complete for `cfg.epochs` (or stopped early), else None."""
    path = run_dir / EFFICIENCY
    if not path.is_file() or not (run_dir / MODEL).is_file():
        return None
    try:
        result = TrainResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError):
        return None
    if result.stopped_early or result.epochs_run >= cfg.epochs:
        result.already_finished = True
        return result
    return None


def load_checkpoint(path: Path, what_to_do: str) -> dict[str, Any]:
    """Load a Lightning checkpoint with `weights_only=True` (no code runs from the file).

    A file that is corrupt, truncated or holds anything but tensors and plain data raises a one-line
    `LungpriorError` naming it and ending with `what_to_do`.
    """
    ckpt = load_tensor_file(path, "checkpoint", what_to_do, mmap=True)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise LungpriorError(f"{path}: not a Lightning checkpoint (no state_dict); {what_to_do}")
    return ckpt


def export_weights(best_ckpt: Path, out: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """Write the backbone's weights from a Lightning checkpoint as a plain state dict (weights_only-loadable).

    `expected` maps every tensor of the backbone to its shape; a checkpoint that lacks one, adds one or has
    another shape raises a `LungpriorError` and nothing is written (the run is then not marked finished).
    """
    redo = f"delete {best_ckpt.parent} and rerun to retrain from scratch"
    ckpt = load_checkpoint(best_ckpt, redo)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    problem = weights_mismatch(state, expected)
    if problem:
        raise LungpriorError(f"{best_ckpt}: {problem}; {redo}")
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save({k: v.clone() for k, v in state.items()}, tmp)  # clone: the checkpoint is memory-mapped


def weights_mismatch(state: dict[str, Any], expected: dict[str, tuple[int, ...]]) -> str:
    """What is wrong with `state` against the expected tensor shapes ("" when every tensor is there and right)."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [
        k for k in expected
        if k in state and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(expected[k]))
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    if not parts:
        return ""
    return f"weights do not match the model ({len(expected)} tensors expected): " + "; ".join(parts)


def write_excluded(excluded: pd.DataFrame, run_dir: Path) -> None:
    """Write the films left out of the run, or kept although their mask failed QC (image_id, reason, action)."""
    with atomic_open(run_dir / EXCLUDED, "w", encoding="utf-8", newline="") as fh:
        excluded.to_csv(fh, index=False)


def excluded_ids(run_dir: str | os.PathLike[str]) -> set[str]:
    """Image ids a run left out (action `excluded`, or no action column: older runs); none without `excluded.csv`."""
    path = Path(run_dir) / EXCLUDED
    if not path.is_file():
        return set()
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    kept = table["action"] == "kept" if "action" in table.columns else pd.Series(False, index=table.index)
    return set(table.loc[~kept, "image_id"])


def write_history(epochs: list[dict[str, Any]], out: Path) -> None:
    with atomic_open(out, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(epochs).to_csv(fh, index=False)


def write_result(result: TrainResult, run_dir: Path) -> None:
    write_json(run_dir / EFFICIENCY, result.to_dict())


def peak_memory(cuda: bool, rss: PeakRSS | None = None) -> tuple[float, str]:
    """This run's peak memory in MiB: CUDA max allocated (reset at the run's start) when training on CUDA, else
    the RSS peak sampled during the run by `rss`; without a sampler (no /proc), the process's lifetime max RSS."""
    if cuda and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    if rss is not None and rss.peak_bytes > 0:
        return rss.peak_mb, "rss sampled during the run"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "process max rss"


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    return value
