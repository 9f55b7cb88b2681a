"""Paired comparison of two scored segmentations of the same films, patients resampled (clustered bootstrap).

    python benchmarks/segeval_compare.py --manifest M --a EVAL_A --b EVAL_B [--metric dice] [--bootstrap 10000]

EVAL_A and EVAL_B are `lungprior segeval` output folders (films.csv) of the same films, e.g. two arms of
benchmarks/segment_cv.py. Prints the mean per-film difference A − B with a 95 % percentile interval and a
two-sided bootstrap p, resampling whole patients (the manifest's `patient_id`; a film without one is its own
patient), and how many films A does better, worse or the same (|difference| < 0.001).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.data.manifest import read_csv
from lungprior.evaluate.bootstrap import bootstrap_p, cluster_weights


@dataclass(frozen=True)
class PairedDiff:
    """Mean per-film difference A − B with its patient-clustered interval and p, and the per-film tallies."""

    n_films: int
    n_patients: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p: float
    better: int
    worse: int
    same: int


def paired_difference(a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_resamples: int = 10000,
                      seed: int = 0, tie: float = 1e-3) -> PairedDiff:
    """Mean of a − b over films; bootstrap over `groups` (patients); p as `paired_bootstrap_diff` computes it."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    w = cluster_weights(groups, n_resamples, seed)
    boot = (w @ d) / w.sum(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedDiff(len(d), len(set(groups)), float(np.mean(a)), float(np.mean(b)), float(d.mean()),
                      float(low), float(high), bootstrap_p(boot), int((d >= tie).sum()), int((d <= -tie).sum()),
                      int((np.abs(d) < tie).sum()))


def load(manifest: Path, eval_a: Path, eval_b: Path, metric: str) -> pd.DataFrame:
    """One row per film scored in both folders: image_id, a, b, patient."""
    m = read_csv(manifest)
    patients = m["patient_id"].astype(str) if "patient_id" in m.columns else m["image_id"].astype(str)
    patient_of = dict(zip(m["image_id"].astype(str), patients.where(patients != "nan", m["image_id"].astype(str)),
                          strict=True))
    films = [pd.read_csv(e / "films.csv", dtype={"image_id": str})[["image_id", metric]] for e in (eval_a, eval_b)]
    both = films[0].merge(films[1], on="image_id", suffixes=("_a", "_b")).dropna()
    both = both.rename(columns={f"{metric}_a": "a", f"{metric}_b": "b"})
    both["patient"] = [patient_of.get(i, i) for i in both["image_id"]]
    return both


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--a", type=Path, required=True)
    p.add_argument("--b", type=Path, required=True)
    p.add_argument("--metric", default="dice")
    p.add_argument("--bootstrap", type=int, default=10000)
    args = p.parse_args()
    df = load(args.manifest, args.a, args.b, args.metric)
    r = paired_difference(df["a"].to_numpy(), df["b"].to_numpy(), df["patient"].to_numpy(), args.bootstrap)
    print(f"{r.n_films} films, {r.n_patients} patients; mean {args.metric} A {r.mean_a:.3f}, B {r.mean_b:.3f}")
    print(f"A - B {r.diff:+.4f} (95% CI {r.ci_low:+.4f} to {r.ci_high:+.4f}, patients resampled), p {r.p:.2g}")
    print(f"A better on {r.better} films, worse on {r.worse}, within 0.001 on {r.same}")


if __name__ == "__main__":
    main()
