"""Markdown tables for docs/benchmark.md from a finished experiment on the synthetic benchmark.

    python scripts/benchmark_tables.py EXP_DIR [--loose loose-10mm] > tables.md

Prints, over the experiment's seeds: test AUROC per mask and class (mean ± SD), the paired masked - original
differences per seed (bootstrap p for macro AUROC, Holm-adjusted DeLong p per class), loose vs tight on each
class (paired DeLong per seed), shortcut reliance (AUROC of a class's score for "its marker is present" among
that class's negatives on the unbiased test split: 0.5 = the marker is ignored), biased-val vs unbiased-test
macro AUROC, and training efficiency.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.evaluate.run_eval import VAL_PREDICTIONS, load_predictions
from lungprior.labels import FINDINGS
from lungprior.stats import delong_test

TARGETS = [*FINDINGS, "macro", "No Finding"]


def _fmt(values: pd.Series, digits: int = 3) -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _runs(exp: Path) -> list[dict]:
    return [json.loads(stage.read_text()) for stage in sorted((exp / "runs").glob("*/stage.json"))]


def auroc_table(results: pd.DataFrame, masks: list[str]) -> str:
    rows = [[m, *(_fmt(results[(results["mask"] == m) & (results["class"] == t)]["auroc"]) for t in TARGETS)]
            for m in masks]
    return _table(["mask", *TARGETS], rows)


def difference_table(comparisons: pd.DataFrame) -> str:
    rows = []
    for (mask, seed), part in comparisons.groupby(["mask", "seed"], sort=False):
        cells = []
        for t in [*FINDINGS, "macro AUROC", "No Finding"]:
            r = part[part["target"] == t]
            if r.empty:
                cells.append("–")
                continue
            r = r.iloc[0]
            p = r["p"] if t == "macro AUROC" else r["p_holm"]
            cells.append(f"{r['diff']:+.3f} (p {p:.2g})")
        rows.append([mask, str(seed), *cells])
    return _table(["mask − original", "seed", *FINDINGS, "macro", "No Finding"], rows)


def loose_vs_tight(runs: list[dict], loose: str) -> str:
    by = {(r["mask"], r["seed"]): r for r in runs}
    rows = []
    for seed in sorted({r["seed"] for r in runs}):
        if (loose, seed) not in by or ("tight", seed) not in by:
            continue
        a, b = load_predictions(by[(loose, seed)]["run_dir"]), load_predictions(by[("tight", seed)]["run_dir"])
        b = b.set_index("image_id").loc[a["image_id"]].reset_index()
        cells = []
        for f in FINDINGS:
            res = delong_test(a[f].to_numpy(), a[f"p_{f}"].to_numpy(), b[f"p_{f}"].to_numpy())
            cells.append(f"{res.diff:+.3f} (p {res.p:.2g})")
        rows.append([str(seed), *cells])
    return _table([f"seed ({loose} − tight)", *FINDINGS], rows)


def shortcut_table(runs: list[dict], manifest: Path, masks: list[str]) -> str:
    from sklearn.metrics import roc_auc_score

    markers = pd.read_csv(manifest.parent / "markers.csv").set_index("image_id")
    values: dict[str, dict[str, list[float]]] = {m: {f: [] for f in FINDINGS} for m in masks}
    for run in runs:
        pred = load_predictions(run["run_dir"]).set_index("image_id")
        for f in FINDINGS:
            neg = pred[pred[f] == 0]
            has = markers.loc[neg.index, f"marker_{f}"].to_numpy()
            if 0 < has.sum() < len(has):
                values[run["mask"]][f].append(float(roc_auc_score(has, neg[f"p_{f}"])))
    rows = [[m, *(_fmt(pd.Series(values[m][f], dtype=float)) for f in FINDINGS)] for m in masks]
    return _table(["mask", *(f"{f} marker" for f in FINDINGS)], rows)


def val_test_gap(runs: list[dict], results: pd.DataFrame, masks: list[str]) -> str:
    from sklearn.metrics import roc_auc_score

    val: dict[str, list[float]] = {m: [] for m in masks}
    for run in runs:
        pred = pd.read_csv(Path(run["run_dir"]) / VAL_PREDICTIONS)
        aucs = [roc_auc_score(pred[f], pred[f"p_{f}"]) for f in FINDINGS if 0 < pred[f].sum() < len(pred)]
        val[run["mask"]].append(float(np.mean(aucs)))
    rows = []
    for m in masks:
        test = results[(results["mask"] == m) & (results["class"] == "macro")]["auroc"]
        rows.append([m, _fmt(pd.Series(val[m])), _fmt(test)])
    return _table(["mask", "val macro AUROC (biased like train)", "test macro AUROC (unbiased)"], rows)


def efficiency_table(eff: pd.DataFrame, masks: list[str]) -> str:
    cols = {"best_epoch": 1, "epochs_run": 1, "seconds_to_best": 0, "seconds_per_epoch": 1, "best_val_auroc": 3}
    rows = [[m, *(_fmt(eff[eff["mask"] == m][c].astype(float), d) for c, d in cols.items())] for m in masks]
    return _table(["mask", "best epoch (0-based)", "epochs run", "s to best", "s / epoch", "best val AUROC"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    parser.add_argument("--loose", default="loose-10mm", help="the loose mask to compare with tight")
    parser.add_argument("--backbone", default=None, help="the backbone to tabulate (default: the first)")
    args = parser.parse_args()
    exp: Path = args.exp
    results = pd.read_csv(exp / "results.csv")
    backbone = args.backbone or str(results["backbone"].iloc[0])
    results = results[results["backbone"] == backbone]
    comparisons = pd.read_csv(exp / "comparisons.csv").query("backbone == @backbone")
    eff = pd.read_csv(exp / "efficiency.csv").query("backbone == @backbone")
    runs = [r for r in _runs(exp) if r["backbone"] == backbone]
    masks = list(dict.fromkeys(results["mask"]))
    manifest = Path(json.loads((exp / "data" / "stage.json").read_text())["manifest"])
    seeds = [int(s) for s in sorted(results["seed"].unique())]
    print(f"Backbone: {backbone}; seeds {seeds}.\n")
    print("### Test AUROC (unbiased split), mean ± SD over seeds\n\n" + auroc_table(results, masks) + "\n")
    print("### Masked − original, per seed (paired; macro: bootstrap p, classes: Holm-adjusted DeLong p)\n\n"
          + difference_table(comparisons) + "\n")
    print(f"### {args.loose} − tight per class (paired DeLong, unadjusted)\n\n"
          + loose_vs_tight(runs, args.loose) + "\n")
    print("### Shortcut reliance: AUROC of the class score for marker present vs absent among the class's "
          "negatives (test)\n\n" + shortcut_table(runs, manifest, masks) + "\n")
    print("### Biased validation vs unbiased test\n\n" + val_test_gap(runs, results, masks) + "\n")
    print("### Training efficiency\n\n" + efficiency_table(eff, masks))


if __name__ == "__main__":
    main()
