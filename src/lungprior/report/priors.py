"""Report sections for the prior dial: the outside-lung control and cost per prior.

- outside-lung AUROC: the AUROC of a model trained and tested on films with the lungs removed (`nolung`).
  Well above 0.5 means the labels can be read from outside the lungs: context (heart size, hilar shadows) or
  shortcuts (markers, devices); set beside the same backbone's AUROC on the original films, the chance-corrected
  ratio `(AUROC_nolung - 0.5) / (AUROC_original - 0.5)` is the share of the discrimination that survives
  without any lung pixel.
- cost per prior: input size, seconds per epoch and to the best epoch, and macro AUROC, per prior.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from lungprior.labels import FINDINGS, NO_FINDING


def _mean(results: pd.DataFrame, mask: str, target: str, column: str = "auroc") -> float:
    values = results[(results["mask"] == mask) & (results["class"] == target)][column]
    return float(values.mean()) if values.notna().any() else float("nan")


def outside_lung_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per backbone and `nolung` prior: outside-lung AUROC per target, beside the original's macro."""
    rows = []
    for backbone, part in results.groupby("backbone", sort=False):
        for mask in dict.fromkeys(part.loc[part["mode"] == "nolung", "mask"]):
            row: dict[str, object] = {"backbone": backbone, "prior": mask}
            for target in (*FINDINGS, "macro", NO_FINDING):
                row[f"outside-lung {target}"] = _mean(part, mask, target)
            original = _mean(part, "original", "macro")
            row["original macro"] = original
            row["share surviving"] = ((row["outside-lung macro"] - 0.5) / (original - 0.5)  # type: ignore[operator]
                                      if np.isfinite(original) and original > 0.5 else float("nan"))
            rows.append(row)
    return pd.DataFrame(rows)


def prior_cost_table(results: pd.DataFrame, efficiency: pd.DataFrame) -> pd.DataFrame:
    """Per backbone and prior: input size, mean seconds per epoch and to best, macro and No Finding AUROC."""
    rows = []
    for (backbone, mask), part in efficiency.groupby(["backbone", "mask"], sort=False):
        res = results[results["backbone"] == backbone]
        rows.append({
            "backbone": backbone, "prior": mask,
            "image_size": part["image_size"].iloc[0] if "image_size" in part else None,
            "seconds_per_epoch": float(part["seconds_per_epoch"].mean()),
            "seconds_to_best": float(part["seconds_to_best"].mean()),
            "macro AUROC": _mean(res, mask, "macro"), f"{NO_FINDING} AUROC": _mean(res, mask, NO_FINDING),
        })
    return pd.DataFrame(rows)


def prior_sections(results: pd.DataFrame, efficiency: pd.DataFrame, table: Callable[[pd.DataFrame], str]) -> str:
    """The HTML of both sections (`table` renders a DataFrame); empty parts are left out."""
    parts = []
    outside = outside_lung_table(results)
    if not outside.empty:
        parts.append("<h2>Outside-lung AUROC (lungs removed)</h2><p class='note'>Trained and tested on films with "
                     "the lungs removed (mean over seeds). Well above 0.5: the labels can be read outside the lungs "
                     "(context or shortcuts). Share surviving = (outside-lung macro − 0.5) / (original macro − 0.5)."
                     "</p>" + table(outside))
    if "image_size" in efficiency.columns and efficiency["mask"].nunique() > 1:
        parts.append("<h2>Cost per prior</h2><p class='note'>Input size, mean seconds per epoch and to the best "
                     "epoch, and AUROC (mean over seeds).</p>" + table(prior_cost_table(results, efficiency)))
    return "".join(parts)
