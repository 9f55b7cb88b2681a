"""`summary.csv`: each backbone x mask x class over its seeds (mean, SD, min, max AUROC; attention in the lungs).

`n_seeds` counts the seeds whose AUROC is defined (the ones the mean and SD are taken over); `n_runs` counts
all seeds run, including those where the AUROC is undefined (a class without positives or negatives).
"""

from __future__ import annotations

import pandas as pd

SUMMARY_COLUMNS = ["backbone", "mask", "class", "n_seeds", "auroc_mean", "auroc_sd", "auroc_min", "auroc_max",
                   "attention_in_lung_mean", "n_runs"]


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Aggregate `results.csv` rows over seeds; the SD is the sample SD (NaN for one seed)."""
    if results.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = results.assign(attention=pd.to_numeric(results["attention_in_lung"], errors="coerce"),
                           defined_seed=results["seed"].where(results["auroc"].notna()))
    out = frame.groupby(["backbone", "mask", "class"], sort=False).agg(  # first-appearance order: the runs' order
        n_seeds=("defined_seed", "nunique"), n_runs=("seed", "nunique"),
        auroc_mean=("auroc", "mean"), auroc_sd=("auroc", "std"),
        auroc_min=("auroc", "min"), auroc_max=("auroc", "max"), attention_in_lung_mean=("attention", "mean"),
    )
    return out.reset_index()[SUMMARY_COLUMNS]
