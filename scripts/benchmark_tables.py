"""Markdown tables for docs/results/shortcut_benchmark.md from a finished experiment on the synthetic benchmark.

    python scripts/benchmark_tables.py EXP_DIR [--loose loose-10mm] [--bootstrap 1000] > tables.md

Every comparison is recomputed from the runs' predictions with lungprior's current statistics (so an experiment
folder written by an older version gives the corrected numbers): per class and for No Finding the paired test
`compare_predictions` picks (Obuchowski's clustered test when a patient has several films, DeLong when every
patient has one), Holm-adjusted over the five findings and No Finding; for macro AUROC the paired patient
bootstrap; every difference with its 95% CI. Printed, over the experiment's seeds:

- test AUROC per mask and class (mean ± SD over seeds: seed variation, not a CI);
- masked − original per seed (difference [95% CI], p), a per-seed verdict (↑k/n: higher in k of n seeds,
  sig. s: significantly so in s) and a seed-pooled comparison (differences averaged over seeds per patient,
  one clustered variance over patients);
- loose vs tight, the same three ways;
- shortcut reliance: the AUROC of a class's score for "its marker is present" among that class's negatives
  on the unbiased test split (0.5 = the marker is ignored), mean over seeds with a 95% CI that resamples
  patients once for all seeds;
- validation vs test macro AUROC (each split's shortcut strength named), and training efficiency with a
  check that the runs settled (how much validation macro AUROC moved over the last four epochs).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.evaluate.compare import align, compare_predictions
from lungprior.evaluate.metrics import label_matrix, score_matrix
from lungprior.evaluate.run_eval import load_calibration, load_predictions
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import HISTORY, VAL_PREDICTIONS
from lungprior.report.findings import p_column, seed_marker
from lungprior.stats import (
    DegenerateDataWarning,
    apply_calibration,
    bootstrap_seed_mean_auroc_ci,
    holm_adjust,
    no_finding_score,
    pooled_macro_test,
    pooled_obuchowski_test,
)

TARGETS = [*FINDINGS, "macro", NO_FINDING]
CMP_TARGETS = [*FINDINGS, "macro AUROC", NO_FINDING]
PLATEAU_EPOCHS = 4  # whether a run settled: how much validation AUROC still moved over the last epochs


def _fmt(values: pd.Series, digits: int = 3) -> str:
    v = values.dropna()
    if v.empty:
        return "–"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def fmt_p(p: float, floor: float = 0.0) -> str:
    """p with two significant digits; a bootstrap p at its floor 2 / (B + 1) reads "≤ floor (floor)"."""
    if p != p:
        return "–"
    if floor > 0 and p <= floor * (1 + 1e-9):
        return f"≤ {floor:.2g} (bootstrap floor)"
    return f"{p:.2g}"


def fmt_diff(r: pd.Series) -> str:
    """"+0.033 [−0.020, +0.086], p 0.57" from a comparisons row (Holm p per class, bootstrap p for macro)."""
    if r["diff"] != r["diff"]:
        return "–"
    p = r[p_column(r["target"])]
    return (f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], p {fmt_p(p, r.get('p_floor', 0.0))}")


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


def comparisons(runs: list[dict], a_mask: str, b_mask: str, n_resamples: int, no_finding: str) -> pd.DataFrame:
    """compare_predictions of mask a vs mask b for every seed that has both (calibrated No Finding when both runs
    have calibration.json)."""
    by = {(r["mask"], r["seed"]): r for r in runs}
    frames = []
    for seed in sorted({r["seed"] for r in runs}):
        if (a_mask, seed) not in by or (b_mask, seed) not in by:
            continue
        ra, rb = by[(a_mask, seed)]["run_dir"], by[(b_mask, seed)]["run_dir"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            t = compare_predictions(load_predictions(ra), load_predictions(rb), names=(a_mask, b_mask),
                                    n_resamples=n_resamples, seed=int(seed), no_finding=no_finding,
                                    calibration=(load_calibration(ra), load_calibration(rb)))
        frames.append(t.assign(seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def difference_table(comp: pd.DataFrame) -> str:
    rows = []
    for seed, part in comp.groupby("seed", sort=True):
        cells = []
        for t in CMP_TARGETS:
            r = part[part["target"] == t]
            cells.append("–" if r.empty else fmt_diff(r.iloc[0]))
        rows.append([str(seed), *cells])
    return _table(["seed", *FINDINGS, "macro", NO_FINDING], rows)


def verdict_row(comp: pd.DataFrame) -> list[str]:
    return [seed_marker(comp[comp["target"] == t], t)[0] or "–" for t in CMP_TARGETS]


def pooled(runs: list[dict], a_mask: str, b_mask: str, no_finding: str) -> pd.DataFrame:
    """Seed-pooled paired comparison per class, No Finding (Holm over these six) and macro AUROC."""
    by = {(r["mask"], r["seed"]): r for r in runs}
    seeds = [s for s in sorted({r["seed"] for r in runs}) if (a_mask, s) in by and (b_mask, s) in by]
    if not seeds:
        return pd.DataFrame()
    a_s, b_s, nf_a, nf_b = [], [], [], []
    for s in seeds:
        ra, rb = by[(a_mask, s)]["run_dir"], by[(b_mask, s)]["run_dir"]
        pa, pb = align(load_predictions(ra), load_predictions(rb), (a_mask, b_mask))
        ca, cb = load_calibration(ra), load_calibration(rb)
        a_s.append(score_matrix(pa))
        b_s.append(score_matrix(pb))
        both = ca is not None and cb is not None
        nf_a.append(no_finding_score(score_matrix(apply_calibration(pa, ca)) if both else a_s[-1], no_finding))
        nf_b.append(no_finding_score(score_matrix(apply_calibration(pb, cb)) if both else b_s[-1], no_finding))
    y, groups, nf_y = label_matrix(pa), pa["patient_id"].astype(str).to_numpy(), pa[NO_FINDING].to_numpy()
    a3, b3 = np.stack(a_s, axis=2), np.stack(b_s, axis=2)  # (n, class, seed)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        for j, k in enumerate(FINDINGS):
            rows.append({"target": k, **vars(pooled_obuchowski_test(y[:, j], a3[:, j], b3[:, j], groups))})
        rows.append({"target": NO_FINDING, **vars(pooled_obuchowski_test(nf_y, np.column_stack(nf_a),
                                                                          np.column_stack(nf_b), groups))})
        macro = pooled_macro_test([y[:, j] for j in range(len(FINDINGS))], [a3[:, j] for j in range(len(FINDINGS))],
                                  [b3[:, j] for j in range(len(FINDINGS))], groups)
    table = pd.DataFrame(rows)
    table["p_holm"] = holm_adjust(table["p"].to_numpy())
    macro_row = {"target": "macro AUROC", **vars(macro), "p_holm": macro.p}
    return pd.concat([table, pd.DataFrame([macro_row])], ignore_index=True).assign(n_seeds=len(seeds))


def pooled_row(pool: pd.DataFrame) -> list[str]:
    cells = []
    for t in CMP_TARGETS:
        r = pool[pool["target"] == t]
        if r.empty or r.iloc[0]["diff"] != r.iloc[0]["diff"]:
            cells.append("–")
            continue
        r = r.iloc[0]
        cells.append(f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], p {fmt_p(r['p_holm'])}")
    return cells


def comparison_section(runs: list[dict], a_mask: str, b_mask: str, n_resamples: int, no_finding: str) -> str:
    comp = comparisons(runs, a_mask, b_mask, n_resamples, no_finding)
    if comp.empty:
        return f"(no seed has both {a_mask} and {b_mask})\n"
    tests = sorted({str(t).split(",")[0] for t in comp["test"] if not str(t).startswith("paired patient bootstrap")})
    pool = pooled(runs, a_mask, b_mask, no_finding)
    n = int(pool["n_seeds"].iloc[0])
    summary = [["per seed (↑ higher / ↓ lower in k of n seeds; sig. = p < 0.05)", *verdict_row(comp)]]
    if n > 1:
        summary.append([f"pooled over {n} seeds (Obuchowski; Holm over the six, macro unadjusted)",
                         *pooled_row(pool)])
    return (f"Per seed: difference [95% CI], p; per class and No Finding {' / '.join(tests)}, Holm-adjusted over the "
            "six; macro: paired patient bootstrap.\n\n" + difference_table(comp) + "\n\n"
            + _table(["", *FINDINGS, "macro", NO_FINDING], summary) + "\n")


def shortcut_table(runs: list[dict], manifest: Path, masks: list[str], n_resamples: int) -> str:
    markers = pd.read_csv(manifest.parent / "markers.csv", dtype={"image_id": str}).set_index("image_id")
    rows = []
    for m in masks:
        mine = [r for r in runs if r["mask"] == m]
        if not mine:
            continue
        preds = [load_predictions(r["run_dir"]).set_index("image_id").sort_index() for r in mine]
        cells = []
        for f in FINDINGS:
            neg = preds[0][preds[0][f] == 0]
            has = markers.loc[neg.index, f"marker_{f}"].to_numpy().astype(int)
            if not 0 < has.sum() < len(has):
                cells.append("–")
                continue
            scores = np.column_stack([p.loc[neg.index, f"p_{f}"].to_numpy() for p in preds])
            ci = bootstrap_seed_mean_auroc_ci(has, scores, neg["patient_id"].astype(str).to_numpy(), n_resamples)
            cells.append(f"{ci.estimate:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
        rows.append([m, *cells])
    return _table(["mask", *(f"{f} marker" for f in FINDINGS)], rows)


def split_biases(manifest: Path) -> tuple[str, str]:
    """(validation, test) shortcut strength of the benchmark beside `manifest`, as text ("" if not recorded)."""
    path = manifest.parent / "phantom.json"
    if not path.is_file():
        return "", ""
    settings = json.loads(path.read_text())
    val = settings.get("val_bias")
    val = settings["bias"] if val is None else val
    return f" (bias {val:g})", f" (bias {settings.get('test_bias', 0.0):g})"


def val_test_gap(runs: list[dict], results: pd.DataFrame, masks: list[str], biases: tuple[str, str]) -> str:
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
    return _table(["mask", f"val macro AUROC{biases[0]}", f"test macro AUROC{biases[1]}"], rows)


def late_change(runs: list[dict], masks: list[str], last: int = PLATEAU_EPOCHS) -> dict[str, pd.Series]:
    """Per mask, each run's validation macro AUROC at its last epoch minus `last` epochs earlier (settled?)."""
    out: dict[str, list[float]] = {m: [] for m in masks}
    for run in runs:
        history = Path(run["run_dir"]) / HISTORY
        if run["mask"] in out and history.is_file():
            val = pd.read_csv(history)["val_auroc"].to_numpy(dtype=float)
            if len(val) > last:
                out[run["mask"]].append(float(val[-1] - val[-1 - last]))
    return {m: pd.Series(v, dtype=float) for m, v in out.items()}


def efficiency_table(eff: pd.DataFrame, masks: list[str], late: dict[str, pd.Series] | None = None) -> str:
    cols = {"best_epoch": 1, "epochs_run": 1, "seconds_to_best": 0, "seconds_per_epoch": 1, "best_val_auroc": 3}
    rows = [[m, *(_fmt(eff[eff["mask"] == m][c].astype(float), d) for c, d in cols.items())] for m in masks]
    header = ["mask", "best epoch (0-based)", "epochs run", "s to best", "s / epoch", "best val AUROC"]
    if late is not None:
        rows = [[*row, _fmt(late[m]) if len(late[m]) else "–"] for row, m in zip(rows, masks, strict=True)]
        header.append(f"val AUROC change, last {PLATEAU_EPOCHS} epochs")
    return _table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    parser.add_argument("--loose", default="loose-10mm", help="the loose mask to compare with tight")
    parser.add_argument("--backbone", default=None, help="the backbone to tabulate (default: the first)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (macro AUROC, shortcut CIs)")
    parser.add_argument("--no-finding", default="max", choices=("max", "prod"))
    args = parser.parse_args()
    exp: Path = args.exp
    results = pd.read_csv(exp / "results.csv")
    backbone = args.backbone or str(results["backbone"].iloc[0])
    results = results[results["backbone"] == backbone]
    eff = pd.read_csv(exp / "efficiency.csv").query("backbone == @backbone")
    runs = [r for r in _runs(exp) if r["backbone"] == backbone]
    masks = list(dict.fromkeys(results["mask"]))
    manifest = Path(json.loads((exp / "data" / "stage.json").read_text())["manifest"])
    seeds = [int(s) for s in sorted(results["seed"].unique())]
    print(f"Backbone: {backbone}; seeds {seeds}.\n")
    print("### Test AUROC (unbiased split), mean ± SD over seeds (seed variation, not a CI)\n\n"
          + auroc_table(results, masks) + "\n")
    for mask in masks:
        if mask != "original":
            print(f"### {mask} − original\n\n"
                  + comparison_section(runs, mask, "original", args.bootstrap, args.no_finding))
    if args.loose in masks and "tight" in masks:
        print(f"### {args.loose} − tight\n\n"
              + comparison_section(runs, args.loose, "tight", args.bootstrap, args.no_finding))
    print("### Shortcut reliance: AUROC of the class score for marker present vs absent among the class's "
          "negatives (test), mean over seeds [95% CI, patients resampled once for all seeds]\n\n"
          + shortcut_table(runs, manifest, masks, args.bootstrap) + "\n")
    print("### Validation vs test\n\n" + val_test_gap(runs, results, masks, split_biases(manifest)) + "\n")
    print("### Training efficiency\n\n" + efficiency_table(eff, masks, late_change(runs, masks)))


if __name__ == "__main__":
    main()
