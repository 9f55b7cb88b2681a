"""One list of warnings per run and per experiment, collected from what the runs already record.

Sources: `segmentation.json` (masks made by the bundled segmentation weights), `history.csv` (validation AUROC
undefined for a class during training), `excluded.csv` (films left out for want of a usable lung mask, or
QC-flagged masks kept with --allow-qc-fail), `metrics.json` (its `warnings`: empty test or validation classes,
bootstrap resamples skipped per class, uncalibrated classes; its `attention`: flat or too coarse Grad-CAM maps)
and, for an experiment, `comparisons.csv` (untestable rows). `lungprior train`, `evaluate` and `experiment`
print the list at the end; the report shows it at the top.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lungprior.labels import FINDINGS
from lungprior.layout import EXCLUDED, HISTORY, METRICS, SEGMENTATION
from lungprior.report.claims import testable


def _history(run: Path) -> list[str]:
    path = run / HISTORY
    try:
        hist = pd.read_csv(path)
    except (OSError, ValueError):
        return []
    if hist.empty:
        return []
    undefined = {k: int(hist[f"val_auroc_{k}"].isna().sum()) for k in FINDINGS if f"val_auroc_{k}" in hist.columns}
    undefined = {k: n for k, n in undefined.items() if n}
    if not undefined:
        return []
    when = {n: "every epoch" if n == len(hist) else f"{n} of {len(hist)} epochs" for n in undefined.values()}
    names = ", ".join(f"{k} ({when[n]})" for k, n in undefined.items())
    return [f"training: validation AUROC undefined for {names} (the validation split has no film with, or none "
            f"without, the finding); the macro validation AUROC is over {len(FINDINGS) - len(undefined)} of "
            f"{len(FINDINGS)} findings there"]


def _excluded(run: Path) -> list[str]:
    path = run / EXCLUDED
    try:
        ex = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return []
    if ex.empty:
        return []
    action = ex["action"] if "action" in ex.columns else pd.Series("excluded", index=ex.index)
    out = []
    kept = ex[action == "kept"]
    if len(kept):
        out.append(f"trained on {len(kept)} film(s) whose lung mask QC flagged (kept with --allow-qc-fail), e.g. "
                   f"{', '.join(kept['image_id'].head(3))} ({EXCLUDED})")
    left = ex[action != "kept"]
    if len(left):
        reasons = left["reason"].value_counts().head(2) if "reason" in left.columns else pd.Series(dtype=int)
        why = "; ".join(f"{r} ({n})" for r, n in reasons.items())
        out.append(f"{len(left)} film(s) left out for want of a usable lung mask{': ' + why if why else ''} "
                   f"({EXCLUDED})")
    return out


def _segmentation(run: Path) -> list[str]:
    """The bundled-weights note when the run's masks (its `segmentation.json`) came from LiteMedSAM's own weights."""
    try:
        record = json.loads((run / SEGMENTATION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    from lungprior.segment.weights import BUNDLED_WEIGHTS_NOTE, made_by_bundled_weights

    if isinstance(record, dict) and record.get("source") == "model" and made_by_bundled_weights(record):
        return [f"segmentation: {BUNDLED_WEIGHTS_NOTE}"]
    return []


def _attention(att: dict[str, Any] | None) -> list[str]:
    if not att:
        return []
    out = [att["not_measurable"]] if att.get("not_measurable") else []
    flat = [(k, v.get("flat_cams", 0), v.get("n_images", 0)) for k, v in att.get("per_class", {}).items()]
    flat = [f"{k} {n} of {total}" for k, n, total in flat if n]
    if flat:
        out.append("Grad-CAM: flat (constant) maps, no attention measured on them: " + ", ".join(flat))
    return out


def run_warnings(run_dir: str | os.PathLike[str]) -> list[str]:
    """Every warning a run's files record, one line each (empty when there are none or the files are absent)."""
    run = Path(run_dir)
    out = _segmentation(run) + _history(run) + _excluded(run)
    try:
        metrics = json.loads((run / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    out += [str(w) for w in metrics.get("warnings") or []]
    out += _attention(metrics.get("attention"))
    return list(dict.fromkeys(out))


def _label(run: dict[str, Any]) -> str:
    return " ".join(str(run[k]) if k != "seed" else f"seed {run[k]}" for k in ("backbone", "mask", "seed") if k in run)


def comparison_warnings(comparisons: pd.DataFrame) -> list[str]:
    """One line per untestable target of comparisons.csv: which masked inputs, and the note with the counts."""
    if comparisons.empty or "testable" not in comparisons.columns:
        return []
    bad = comparisons[~comparisons.apply(testable, axis=1)]
    out = []
    mask_col = "mask" if "mask" in bad.columns else "a"
    for (target, note), part in bad.groupby(["target", "note"], sort=False):
        masks = ", ".join(dict.fromkeys(part[mask_col].astype(str)))
        out.append(f"{target} vs original ({masks}): {note}; no p, no claim")
    return out


def experiment_warnings(exp_dir: str | os.PathLike[str], runs: list[dict[str, Any]]) -> list[str]:
    """The experiment's list: each run's warnings (a line shared by several runs once, naming them) and the
    untestable comparisons."""
    where: dict[str, list[str]] = {}
    for run in runs:
        for w in run_warnings(run["run_dir"]):
            where.setdefault(w, []).append(_label(run))
    out = [f"{w} [{'all runs' if len(names) == len(runs) > 1 else '; '.join(names)}]" for w, names in where.items()]
    path = Path(exp_dir) / "comparisons.csv"
    if path.is_file():
        out += comparison_warnings(pd.read_csv(path))
    return out


def warnings_html(items: list[str]) -> str:
    """The list as an HTML block for the top of a page ("No warnings." when empty)."""
    if not items:
        return "<div class='warnings' id='warnings'><p>No warnings.</p></div>"
    lis = "".join(f"<li>{html.escape(w)}</li>" for w in items)
    return f"<div class='warnings' id='warnings'><p><b>Warnings ({len(items)})</b></p><ul>{lis}</ul></div>"


def print_warnings(echo: Callable[[str], Any], items: list[str]) -> None:
    """Print the list at the end of a command ('No warnings.' when empty)."""
    if not items:
        echo("No warnings.")
        return
    echo(f"Warnings ({len(items)}):")
    for w in items:
        echo(f"- {w}")
