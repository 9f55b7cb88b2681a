"""The experiment's tables: results.csv, summary.csv (over seeds), comparisons.csv and efficiency.csv."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from lungprior.data.atomic import atomic_path
from lungprior.evaluate.run_eval import METRICS, load_calibration, paired_predictions
from lungprior.evaluate.stats import DegenerateDataWarning
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.summary import seed_summary
from lungprior.labels import FINDINGS, NO_FINDING

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
            t = compare_predictions(*paired_predictions(run["run_dir"], ref["run_dir"]),
                                    names=(run["mask"], "original"), n_resamples=n_resamples, seed=run["seed"],
                                    no_finding=no_finding,
                                    calibration=(load_calibration(run["run_dir"]), load_calibration(ref["run_dir"])))
        t.insert(0, "seed", run["seed"])
        t.insert(0, "backbone", run["backbone"])
        frames.append(t)
    cols = ["backbone", "seed", "a", "b", "target", "auc_a", "auc_b", "diff", "z", "p", "p_holm", "ci_low",
            "ci_high", "test", "p_floor"]
    table = pd.concat(frames, ignore_index=True).reindex(columns=cols) if frames else pd.DataFrame(columns=cols)
    return table.rename(columns={"a": "mask", "b": "versus"})  # no masked run (or no original): the header only


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
