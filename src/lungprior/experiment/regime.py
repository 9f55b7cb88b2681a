"""The regime map: one study per (shortcut strength, outside-context strength) cell of the phantom.

A regime file is an experiment file (see `config`) with a `regime:` section:

    regime:
      bias: [0.0, 0.5, 0.9]        # shortcut strength in train/val (the test split stays unbiased)
      context: [0.0, 0.5, 1.0]     # finding signal outside the tight lung outline (none / some / most)
      target_val_auroc: 0.8        # for "seconds to reach this validation macro AUROC"

Each cell is a full experiment in `OUT/cells/bias<b>_context<c>/` (skipped when unchanged, resumable), and
`OUT/regime.csv` holds one row per cell x backbone x prior (means and SDs over seeds), `OUT/regime_map.csv`
one row per cell x backbone: the winning prior per metric, the outside-lung AUROC, and whether the cell shows
the study's real-data pattern or the shortcut pattern (see `patterns`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from lungprior.data.atomic import atomic_path, write_json
from lungprior.data.runjson import validate
from lungprior.errors import LungpriorError
from lungprior.experiment.config import ExperimentConfig, read_yaml_mapping
from lungprior.experiment.runner import RUNTIME_TRAINING, Log, run_experiment
from lungprior.experiment.stages import content_hash, finished_record
from lungprior.labels import NO_FINDING
from lungprior.layout import HISTORY
from lungprior.masks.spec import CONTROL_MODES

#: Written in a cell's folder when it finishes: the cell settings' hash and its runs' records.
CELL_FILE = "cell.json"


class RegimeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bias: list[float] = Field(default_factory=lambda: [0.0, 0.5, 0.9], min_length=1)
    context: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0], min_length=1)
    target_val_auroc: float = Field(0.8, gt=0.0, le=1.0)


def load_regime(path: str | os.PathLike[str]) -> tuple[ExperimentConfig, RegimeSettings]:
    """Read a regime file: the experiment settings (validated as `load_experiment` does, by the same YAML loader)
    and the sweep. A file holding only `regime:` is refused (it would run the default study)."""
    p = Path(path)
    data = read_yaml_mapping(p, "regime")
    if "regime" not in data:
        raise LungpriorError(f"{p}: a regime file needs a 'regime:' section (bias, context)")
    regime = validate(RegimeSettings, data.pop("regime") or {}, p, prefix="regime")
    if not data:
        raise LungpriorError(f"{p}: the file holds only 'regime:'; write the study's settings beside it "
                             "(see configs/regime_smoke.yaml)")
    for name, values in (("bias", regime.bias), ("context", regime.context)):
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise LungpriorError(f"{p}: regime.{name}: values must be in [0, 1], got {values}")
        names: dict[str, float] = {}
        for v in values:
            text = f"{v:g}"
            if text in names:
                raise LungpriorError(f"{p}: regime.{name}: {names[text]!r} and {v!r} name the same cell folder "
                                     f"({name}{text}); give values that differ in their first six digits, once each")
            names[text] = v
    cfg = validate(ExperimentConfig, data, p)  # the rest is an experiment file, validated as one
    if cfg.dataset.kind != "phantom":
        raise LungpriorError(f"{p}: the regime map sweeps the phantom's dials; dataset.kind must be 'phantom'")
    return cfg, regime


def cell_name(bias: float, context: float) -> str:
    return f"bias{bias:g}_context{context:g}"


def cell_config(cfg: ExperimentConfig, bias: float, context: float) -> ExperimentConfig:
    """The experiment of one cell: the base experiment with the phantom's two dials set."""
    phantom = cfg.dataset.phantom.model_copy(update={"bias": bias, "context": context})
    dataset = cfg.dataset.model_copy(update={"phantom": phantom})
    return cfg.model_copy(update={"dataset": dataset, "name": f"{cfg.name}/{cell_name(bias, context)}"})


def seconds_to_target(history: pd.DataFrame, target: float) -> float:
    """Training seconds until the validation macro AUROC first reaches `target` (NaN if never)."""
    reached = np.flatnonzero(history["val_auroc"].to_numpy(dtype=float) >= target)
    if reached.size == 0:
        return float("nan")
    return float(history["epoch_seconds"].to_numpy(dtype=float)[: reached[0] + 1].sum())


def seconds_to_best(history: pd.DataFrame) -> float:
    """Training seconds until the epoch with the best validation macro AUROC (the checkpoint a run keeps)."""
    auroc = history["val_auroc"].to_numpy(dtype=float)
    if not np.isfinite(auroc).any():
        return float("nan")
    return float(history["epoch_seconds"].to_numpy(dtype=float)[: int(np.nanargmax(auroc)) + 1].sum())


def cell_rows(exp: Path, runs: list[dict[str, Any]], target: float) -> pd.DataFrame:
    """One row per backbone x prior of one cell: means and SDs over seeds of the map's metrics."""
    results = pd.read_csv(exp / "results.csv")
    per_run = []
    for run in runs:
        part = results[(results["backbone"] == run["backbone"]) & (results["mask"] == run["mask"])
                       & (results["seed"] == run["seed"])].set_index("class")
        history = pd.read_csv(Path(run["run_dir"]) / HISTORY)
        per_run.append({
            "backbone": run["backbone"], "prior": run["mask"], "mode": run["mode"], "seed": run["seed"],
            "macro_auroc": part.loc["macro", "auroc"], "no_finding_auroc": part.loc[NO_FINDING, "auroc"],
            "attention_in_lung": part.loc["macro", "attention_in_lung"],
            "seconds_per_epoch": float(history["epoch_seconds"].mean()),
            "seconds_to_target": seconds_to_target(history, target),
            "seconds_to_best": seconds_to_best(history),
        })
    frame = pd.DataFrame(per_run)
    metrics = ["macro_auroc", "no_finding_auroc", "attention_in_lung", "seconds_per_epoch", "seconds_to_target",
               "seconds_to_best"]
    grouped = frame.groupby(["backbone", "prior", "mode"], sort=False)[metrics]
    out = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_sd")).reset_index()
    out.insert(3, "n_seeds", grouped.size().to_numpy())
    # seconds_to_target_mean averages the seeds that got there (NaN: never): how many did is part of the answer
    out.insert(4, "seeds_at_target", grouped.count()["seconds_to_target"].to_numpy())
    return out


def patterns(cell: pd.DataFrame) -> dict[str, Any]:
    """Winners per metric (controls excluded) and the two patterns the map must be able to show.

    - study pattern (real NIH films): original >= loose > tight on macro AUROC, loose > original on No
      Finding, tight cheaper than original (sooner at the target val AUROC, or there when original is not;
      else sooner at its own best val AUROC: the study's tight masks train faster to a lower AUROC); a prior
      is "at the target" when every seed reached it;
    - shortcut pattern: a lung mask (tight or loose) beats the original on macro AUROC.
    Comparisons use the first loose prior in the cell's order.
    """
    priors = cell[~cell["mode"].isin(CONTROL_MODES)]
    out: dict[str, Any] = {}
    for metric, best in (("macro_auroc", "max"), ("no_finding_auroc", "max"), ("attention_in_lung", "max"),
                         ("seconds_to_target", "min")):
        rows = priors.loc[[_at_target(r) for _, r in priors.iterrows()]] if metric == "seconds_to_target" else priors
        values = rows.set_index("prior")[f"{metric}_mean"].dropna()
        out[f"best_{metric}"] = (values.idxmax() if best == "max" else values.idxmin()) if not values.empty else None
    nolung = cell[cell["mode"] == "nolung"]["macro_auroc_mean"]
    out["outside_lung_auroc"] = float(nolung.iloc[0]) if not nolung.empty else float("nan")

    def first(mode: str) -> pd.Series | None:
        rows = cell[cell["mode"] == mode]
        return rows.iloc[0] if not rows.empty else None

    orig, loose, tight = first("original"), first("loose"), first("tight")
    study = shortcut = None
    if orig is not None and loose is not None and tight is not None:
        study = bool(orig["macro_auroc_mean"] >= loose["macro_auroc_mean"] > tight["macro_auroc_mean"]
                     and loose["no_finding_auroc_mean"] > orig["no_finding_auroc_mean"] and _cheaper(tight, orig))
    if orig is not None and (loose is not None or tight is not None):
        masked = [r["macro_auroc_mean"] for r in (loose, tight) if r is not None]
        shortcut = bool(max(masked) > orig["macro_auroc_mean"])
    out["study_pattern"], out["shortcut_pattern"] = study, shortcut
    return out


def _at_target(row: pd.Series) -> bool:
    """Whether every seed of a prior reached the target val AUROC (a mean over some seeds is not an answer)."""
    if not np.isfinite(row["seconds_to_target_mean"]):
        return False
    return "seeds_at_target" not in row or bool(row["seeds_at_target"] == row["n_seeds"])


def _cheaper(a: pd.Series, b: pd.Series) -> bool:
    ta, tb = a["seconds_to_target_mean"], b["seconds_to_target_mean"]
    if _at_target(a):  # reaching the target where the other does not (in every seed) is cheaper
        return bool(not _at_target(b) or ta < tb)
    sa, sb = a.get("seconds_to_best_mean", np.nan), b.get("seconds_to_best_mean", np.nan)
    if np.isfinite(sa) and np.isfinite(sb):
        return bool(sa < sb)
    return bool(a["seconds_per_epoch_mean"] < b["seconds_per_epoch_mean"])


def parse_cell(text: str) -> tuple[float, float]:
    """`"0.9,1"` -> (0.9, 1.0): one cell as BIAS,CONTEXT."""
    parts = text.replace(" ", "").split(",")
    try:
        bias, context = (float(x) for x in parts)
    except ValueError:
        raise LungpriorError(f"--cell expects BIAS,CONTEXT, e.g. 0.9,1; got {text!r}") from None
    return bias, context


def run_regime(cfg: ExperimentConfig, regime: RegimeSettings, out_dir: str | os.PathLike[str], *,
               cells: Sequence[tuple[float, float]] | None = None, log: Log = print) -> tuple[Path, Path]:
    """Run (or resume) the cells and write `regime.csv` and `regime_map.csv`; returns their paths.

    `cells` (default: all) picks (bias, context) cells of the map to run; the tables also hold every other
    cell already finished in `out_dir` with the same settings (`CELL_FILE`), so a map run one cell at a time
    grows its tables cell by cell.
    """
    out = Path(out_dir)
    grid = [(b, c) for b in regime.bias for c in regime.context]
    chosen = set(grid) if cells is None else set(cells)
    unknown = sorted(chosen - set(grid))
    if unknown:
        bias, context = unknown[0]
        raise LungpriorError(f"--cell {bias:g},{context:g}: not a cell of this map "
                             f"(bias {regime.bias}, context {regime.context})")
    rows, map_rows = [], []
    for bias, context in grid:
        name, ccfg = cell_name(bias, context), cell_config(cfg, bias, context)
        key = content_hash("cell", ccfg.model_dump(mode="json", exclude={"training": set(RUNTIME_TRAINING)}))
        if (bias, context) in chosen:
            log(f"regime cell {name}")
            result = run_experiment(ccfg, out / "cells" / name, log=log)
            if result.report is None:  # not the lead process of a multi-process launch
                continue
            exp, runs = result.exp_dir, result.runs
            write_json(exp / CELL_FILE, {"hash": key, "runs": runs})
        else:
            done = finished_record(out / "cells" / name, key, CELL_FILE)
            if done is None:
                log(f"regime cell {name}: not run yet (--cell {bias:g},{context:g})")
                continue
            exp, runs = out / "cells" / name, done["runs"]
        cell = cell_rows(exp, runs, regime.target_val_auroc)
        cell.insert(0, "context", context)
        cell.insert(0, "bias", bias)
        rows.append(cell)
        for backbone, part in cell.groupby("backbone", sort=False):
            map_rows.append({"bias": bias, "context": context, "backbone": backbone, **patterns(part)})
    paths = (out / "regime.csv", out / "regime_map.csv")
    if rows:
        for path, frame in zip(paths, (pd.concat(rows, ignore_index=True), pd.DataFrame(map_rows)), strict=True):
            with atomic_path(path, suffix=".csv") as tmp:
                frame.to_csv(tmp, index=False)
    return paths
