"""The experiment in three lines: what was compared, what came out (with CI and p), where the report is.

Read from the experiment folder's `experiment.json`, `results.csv` and `comparisons.csv`; the CLI prints the lines
at the end of a study and the report opens with them.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pandas as pd

from lungprior.errors import LungpriorError
from lungprior.evaluate.testability import format_p
from lungprior.experiment.tables import MACRO
from lungprior.layout import PREDICTIONS
from lungprior.masks.spec import CONTROL_MODES
from lungprior.report import claims


def _config(exp: Path) -> dict:
    try:
        return json.loads((exp / "experiment.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _test_size(exp: Path) -> str:
    """'88 test films, 41 patients' from the first run's predictions ('' when unknown)."""
    for marker in sorted((exp / "runs").glob("*/stage.json")):
        try:
            preds = pd.read_csv(Path(json.loads(marker.read_text())["run_dir"]) / PREDICTIONS)
        except (OSError, KeyError, ValueError):
            continue
        return f"{len(preds)} test films, {preds['patient_id'].nunique()} patients"
    return ""


def _compared(exp: Path, results: pd.DataFrame) -> str:
    cfg = _config(exp)
    backbones = ", ".join(dict.fromkeys(results["backbone"].astype(str)))
    modes = list(dict.fromkeys(results["mask"].astype(str)))
    masked = [m for m in modes if m != "original"]
    seeds = results["seed"].nunique()
    phantom = (cfg.get("dataset") or {}).get("phantom") or {}
    setting = ""
    if (cfg.get("dataset") or {}).get("kind") == "phantom" and phantom.get("bias", 0) > 0:
        val = phantom.get("val_bias")
        val = "" if val is None else f", validation {val:g}"
        setting = (f"; shortcut markers outside the lungs follow the labels in training (bias {phantom['bias']:g}"
                   f"{val}) but not in the test split (bias {phantom.get('test_bias', 0):g})")
    size = _test_size(exp)
    what = (f"original films vs lung-masked films ({', '.join(masked) or 'none'})" if "original" in modes
            else f"{', '.join(modes)} films, without an original-film run to compare with")
    return (f"Compared: {backbones} trained on {what}"
            f"{setting}; macro AUROC over the five findings on the test split"
            f"{f' ({size})' if size else ''}, {seeds} seed{'s' if seeds > 1 else ''}.")


def _best_class(comparisons: pd.DataFrame, backbone: str, mask: str) -> str:
    """'; per class, Pneumonia +0.248 (...), Holm-adjusted p = 0.006' for the significant class with the smallest
    adjusted p (untestable classes are never claimed; they are named instead)."""
    rows = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                       & (comparisons["target"] != MACRO)]
    untestable = rows[~rows.apply(claims.testable, axis=1)] if not rows.empty else rows
    names = list(dict.fromkeys(untestable["target"]))
    if len(names) > 2:
        skipped = f"; not testable (too few patients with or without the finding): {', '.join(names)}"
    else:
        skipped = "" if untestable.empty else "; not testable: " + ", ".join(
            f"{r['target']} ({claims.short_note(str(r.get('note') or ''))})"
            for _, r in untestable.drop_duplicates("target").iterrows())
    sig = rows[rows.apply(claims.significant, axis=1)] if not rows.empty else rows
    if sig.empty:
        return skipped
    r = sig.loc[sig["p_holm"].astype(float).idxmin()]
    ci = (f" (95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f})"
          if "ci_low" in r and pd.notna(r["ci_low"]) and pd.notna(r.get("ci_high")) else "")
    return f"; per class, {r['target']} {r['diff']:+.3f}{ci}, Holm-adjusted {claims.p_text(r)}{skipped}"


def _outcome(results: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    macro = comparisons[comparisons["target"] == MACRO].copy()
    if macro.empty:
        return "Result: no masked input was compared with the original films."
    auc = results[results["class"] == "macro"]
    candidates = auc[auc["mask"] != "original"]
    if "mode" in candidates.columns:  # controls (the lungs removed) are never the headline's masked input
        candidates = candidates[~candidates["mode"].isin(CONTROL_MODES)]
    means = candidates.groupby(["backbone", "mask"], sort=False)["auroc"].mean().dropna()
    if means.empty:
        return "Result: no macro AUROC could be computed."
    backbone, mask = means.idxmax()
    rows = macro[(macro["backbone"] == backbone) & (macro["mask"] == mask)]
    best = auc[(auc["backbone"] == backbone) & (auc["mask"] == mask)]
    orig = auc[(auc["backbone"] == backbone) & (auc["mask"] == "original")]
    n_masks = int(macro.groupby(["backbone", "seed"]).size().max())
    holm = claims.family(MACRO, n_masks)
    per_class = _best_class(comparisons, backbone, mask)
    tested = rows[rows.apply(claims.testable, axis=1)]
    if tested.empty:
        note = claims.short_note(str(rows["note"].iloc[0])) if len(rows) else ""
        claim = per_class.removeprefix("; ") if "per class" in per_class else "no significance claim can be made"
        return f"Result: macro AUROC of {mask} vs original for {backbone} is not testable ({note}); {claim}."
    diff = tested["diff"].astype(float)
    sig = tested.apply(claims.significant, axis=1)
    verdict = ("beats" if diff.mean() > 0 else "is worse than") if bool(sig.all()) and len(tested) == len(rows) \
        else "does not differ significantly from"
    if len(rows) == 1:
        r = rows.iloc[0]
        o = orig.iloc[0] if len(orig) else None
        ref = (f" vs {o['auroc']:.3f} [{o['ci_low']:.3f}, {o['ci_high']:.3f}]" if o is not None else "")
        b = best.iloc[0]
        raw = format_p(float(r["p"]), claims.p_bounds_row(r))
        return (f"Result: {mask} {verdict} original for {backbone}: macro AUROC {b['auroc']:.3f} "
                f"[{b['ci_low']:.3f}, {b['ci_high']:.3f}]{ref}; difference {r['diff']:+.3f} "
                f"(95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}), {r['test']} {raw}, "
                f"{holm}: {claims.p_text(r)}{per_class}.")
    ps = [claims.claim_p(r) for _, r in tested.iterrows()]
    lo, hi = min(ps), max(ps)
    return (f"Result: {mask} {verdict} original for {backbone} (significant in {int(sig.sum())} of {len(rows)} "
            f"seeds): macro AUROC {best['auroc'].mean():.3f} vs {orig['auroc'].mean():.3f} (mean over seeds); "
            f"difference {diff.min():+.3f} to {diff.max():+.3f} over seeds (95% CIs from "
            f"{tested['ci_low'].min():+.3f} to {tested['ci_high'].max():+.3f}), {holm}: "
            f"{format_p(*lo)} to {format_p(*hi).removeprefix('p = ').removeprefix('p ')}.")


def headline_lines(exp_dir: str | os.PathLike[str], report: str | os.PathLike[str] | None = None) -> list[str]:
    """Three plain-text lines for the experiment in `exp_dir` (its tables must exist)."""
    exp = Path(exp_dir)
    missing = [n for n in ("results.csv", "comparisons.csv") if not (exp / n).is_file()]
    if missing:
        raise LungpriorError(f"{exp}: no {' or '.join(missing)} (run the experiment first)")
    results = pd.read_csv(exp / "results.csv")
    comparisons = claims.read_comparisons(exp)
    where = Path(report) if report is not None else exp / "report.html"
    return [_compared(exp, results), _outcome(results, comparisons),
            f"Report: {where} (tables: results.csv, comparisons.csv in {exp})."]


def headline_html(exp_dir: str | os.PathLike[str], report: str | os.PathLike[str] | None = None) -> str:
    """The first two lines as an HTML block for the top of the report (not the line naming the report itself)."""
    lines = headline_lines(exp_dir, report)[:2]
    return '<div class="headline">' + "".join(f"<p>{html.escape(s)}</p>" for s in lines) + "</div>"
