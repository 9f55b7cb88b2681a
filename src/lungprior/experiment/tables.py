"""The experiment's tables: results.csv, summary.csv (over seeds), comparisons.csv and efficiency.csv."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from lungprior.data.atomic import atomic_path
from lungprior.evaluate.run_eval import load_calibration, paired_predictions
from lungprior.evaluate.stats import DegenerateDataWarning, holm_adjust_bounds
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.summary import seed_summary
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import METRICS

MACRO = "macro AUROC"
COMPARISON_COLUMNS = ["backbone", "seed", "a", "b", "target", "auc_a", "auc_b", "diff", "z", "p", "p_bound", "p_holm",
                      "p_holm_bound", "ci_low", "ci_high", "test", "p_floor", "n_pos", "n_pos_patients", "n_neg",
                      "n_neg_patients", "testable", "note"]
RESULT_COLUMNS = ["backbone", "mode", "mask", "radius_mm", "alpha", "seed", "class", "auroc", "ci_low", "ci_high",
                  "auprc", "attention_in_lung", "pointing_game"]


def _metrics(run: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(run["run_dir"]) / METRICS).read_text())


def results_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run and target (five findings, macro, No Finding) with AUROC and its 95% CI."""
    rows = []
    for run in runs:
        m = _metrics(run)
        base = {k: run.get(k) for k in ("backbone", "mode", "mask", "radius_mm", "alpha", "seed")}
        attention = m.get("attention", {}).get("per_class", {})
        targets = [(k, m["per_class"][k]["auroc"], m["per_class"][k]["auprc"], attention.get(k, {})) for k in FINDINGS]
        targets.append(("macro", m["macro_auroc"], None, {"attention_in_lung": m.get("attention", {}).get(
            "attention_in_lung"), "pointing_game": m.get("attention", {}).get("pointing_game")}))
        targets.append((NO_FINDING, m["no_finding"]["auroc"], m["no_finding"]["auprc"], {}))
        for name, roc, prc, att in targets:
            rows.append({**base, "class": name, "auroc": roc["estimate"], "ci_low": roc["low"], "ci_high": roc["high"],
                         "auprc": prc["estimate"] if prc else None, "attention_in_lung": att.get("attention_in_lung"),
                         "pointing_game": att.get("pointing_game")})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def comparisons_table(runs: list[dict[str, Any]], n_resamples: int, no_finding: str) -> pd.DataFrame:
    """Every masked run against the original run of the same backbone and seed."""
    from lungprior.evaluate.compare import compare_predictions

    originals = {(r["backbone"], r["seed"]): r for r in runs if r["mode"] == "original"}
    frames = []
    for run in runs:
        ref = originals.get((run["backbone"], run["seed"]))
        if run["mode"] == "original" or ref is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            pair = paired_predictions(run["run_dir"], ref["run_dir"])
            t = compare_predictions(*pair,
                                    names=(run["mask"], "original"), n_resamples=n_resamples, seed=run["seed"],
                                    no_finding=no_finding,
                                    calibration=(load_calibration(run["run_dir"]), load_calibration(ref["run_dir"])))
        t.insert(0, "seed", run["seed"])
        t.insert(0, "backbone", run["backbone"])
        frames.append(t)
    present = list(dict.fromkeys(c for f in frames for c in f.columns))
    cols = [c for c in COMPARISON_COLUMNS if not frames or c in present] + [c for c in present
                                                                            if c not in COMPARISON_COLUMNS]
    table = pd.concat(frames, ignore_index=True).reindex(columns=cols) if frames else pd.DataFrame(columns=cols)
    table = add_macro_holm(table) if frames else table
    return table.rename(columns={"a": "mask", "b": "versus"})  # no masked run (or no original): the header only


def as_bool(value: object) -> bool:
    """A flag read back from CSV: True, "True", 1 or "1.0" are true; False, NaN and anything else are not."""
    return str(value).strip().lower() in ("true", "1", "1.0")


def p_bounds(table: pd.DataFrame) -> pd.Series:
    """Whether each row's p is a bound (a bootstrap p at its floor): the `p_bound` column, else p <= p_floor > 0."""
    if "p_bound" in table.columns and table["p_bound"].notna().any():
        return table["p_bound"].map(as_bool)
    floor = pd.to_numeric(table.get("p_floor", pd.Series(0.0, index=table.index)), errors="coerce").fillna(0.0)
    p = pd.to_numeric(table["p"], errors="coerce")
    return (floor > 0) & (p <= floor)


def add_macro_holm(table: pd.DataFrame) -> pd.DataFrame:
    """Fill the macro rows' `p_holm` (+ `p_holm_bound`): the macro p Holm-adjusted over the masked inputs compared
    with the same original run (backbone x seed). Untestable rows (no p) are left out of the family."""
    out = table.copy()
    out["p_bound"] = p_bounds(out)
    mask_col = "a" if "a" in out.columns else "mask"
    if "p_holm_bound" not in out.columns:  # a table from before the column: the per-class family's flags
        out["p_holm_bound"] = False
        per_class = out[out["target"] != MACRO]
        for _, part in per_class.groupby(["backbone", "seed", mask_col], sort=False):
            _, flags = holm_adjust_bounds(part["p"].to_numpy(dtype=float), part["p_bound"].to_numpy(dtype=bool))
            out.loc[part.index, "p_holm_bound"] = flags
    out["p_holm_bound"] = out["p_holm_bound"].map(as_bool)
    macro = out[out["target"] == MACRO]
    for _, part in macro.groupby(["backbone", "seed"], sort=False):
        adj, flags = holm_adjust_bounds(part["p"].to_numpy(dtype=float), part["p_bound"].to_numpy(dtype=bool))
        out.loc[part.index, "p_holm"] = adj
        out.loc[part.index, "p_holm_bound"] = flags
    return out


def efficiency_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Training cost per run: input size, epochs, best epoch, seconds per epoch and to the best, throughput, memory."""
    rows = []
    for run in runs:
        m = _metrics(run)
        e = m["efficiency"]
        rows.append({k: run.get(k) for k in ("backbone", "mode", "mask", "seed")} | {
            "image_size": m.get("config", {}).get("image_size")} | {
            k: e.get(k) for k in ("epochs_run", "best_epoch", "best_val_auroc", "seconds_per_epoch", "seconds_to_best",
                                  "train_images_per_s", "peak_memory_mb", "stopped_early")})
    return pd.DataFrame(rows)


def write_tables(cfg: ExperimentConfig, exp: Path, runs: list[dict[str, Any]], seg: dict | None) -> dict[str, Path]:
    """Write the tables at the top of the experiment folder."""
    results = results_table(runs)
    tables = {
        "results": results,
        "summary": seed_summary(results),
        "comparisons": comparisons_table(runs, cfg.evaluation.bootstrap, cfg.evaluation.no_finding),
        "efficiency": efficiency_table(runs),
    }
    paths = {}
    for name, df in tables.items():
        path = exp / f"{name}.csv"
        with atomic_path(path, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
        paths[name] = path
    return paths
