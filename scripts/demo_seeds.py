"""Does the demo's headline hold beyond seed 0? The demo's settings over several benchmark and training seeds.

    python scripts/demo_seeds.py --out demo-seeds [--phantom-seeds 0 1 2] [--train-seeds 0 1] \
        [--set training.epochs=16 training.batch_size=8 ...]

For every benchmark seed, one experiment with the demo's settings (`src/lungprior/experiment/demo.yaml`; the
segmentation check left out: it does not touch the classifiers) and the given training seeds; prints each
experiment's headline lines and one row per (benchmark seed, training seed): best masked mode, its macro AUROC,
the masked - original macro difference with its paired patient-bootstrap CI and p, and how many comparisons
(macro, or per class after Holm) favour the masked input significantly. Exit status 1 when a row misses the
demo's claim: best macro AUROC >= 0.75 and at least one comparison significantly in favour of the masked input.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from lungprior.experiment import load_experiment, run_experiment
from lungprior.report.findings import p_column
from lungprior.report.headline import headline_lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--phantom-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE",
                    help="override demo.yaml settings, e.g. training.epochs=16 dataset.phantom.n=600")
    args = ap.parse_args()
    base = yaml.safe_load(resources.files("lungprior.experiment").joinpath("demo.yaml").read_text())
    rows = []
    for pseed in args.phantom_seeds:
        cfg = {**base, "name": f"demo-p{pseed}"}
        cfg["dataset"] = {**base["dataset"], "phantom": {**base["dataset"]["phantom"], "seed": pseed}}
        cfg["segmentation"] = {**base["segmentation"], "check_films": 0}
        cfg["training"] = {**base["training"], "seeds": args.train_seeds}
        for item in args.set:
            key, _, value = item.partition("=")
            *parents, leaf = key.split(".")
            node = cfg
            for k in parents:
                node[k] = dict(node.get(k) or {})
                node = node[k]
            node[leaf] = yaml.safe_load(value)
        exp = args.out / f"phantom{pseed}"
        exp.mkdir(parents=True, exist_ok=True)
        (exp.parent / f"phantom{pseed}.yaml").write_text(yaml.safe_dump(cfg))
        run_experiment(load_experiment(exp.parent / f"phantom{pseed}.yaml"), exp, log=print)
        print(*headline_lines(exp), sep="\n", flush=True)
        results, comparisons = pd.read_csv(exp / "results.csv"), pd.read_csv(exp / "comparisons.csv")
        macro = comparisons[comparisons["target"] == "macro AUROC"]
        adjusted = comparisons.apply(lambda r: r[p_column(r["target"])], axis=1)  # the report's significance rule
        wins = comparisons[(comparisons["versus"] == "original") & (comparisons["diff"] > 0) & (adjusted < 0.05)]
        for seed, part in macro.groupby("seed"):
            auc = results[(results["class"] == "macro") & (results["seed"] == seed)].set_index("mask")["auroc"]
            best = part.loc[part["auc_a"].idxmax()]
            won = wins[(wins["seed"] == seed) & (wins["mask"] == best["mask"])]["target"]
            rows.append({"phantom_seed": pseed, "train_seed": seed, "best": best["mask"], "best_macro": best["auc_a"],
                         "original_macro": auc.get("original"), "diff": best["diff"], "ci_low": best["ci_low"],
                         "ci_high": best["ci_high"], "p": best["p"], "significant_wins": ", ".join(won) or "-"})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"macro difference significant (p < 0.05) in {int((table['p'] < 0.05).sum())} of {len(table)} pairs")
    ok = (table["best_macro"] >= 0.75) & (table["significant_wins"] != "-")
    print(f"claim holds in {int(ok.sum())} of {len(table)} (benchmark seed, training seed) pairs")
    return 0 if ok.all() else 1


if __name__ == "__main__":
    sys.exit(main())
