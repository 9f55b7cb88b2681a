"""A short findings section written from the numbers."""

from __future__ import annotations

import pandas as pd

from lungprior.labels import NO_FINDING


def _best(results: pd.DataFrame, backbone: str, target: str) -> tuple[str, float] | None:
    sub = results[(results["backbone"] == backbone) & (results["class"] == target)]
    means = sub.groupby("mask")["auroc"].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmax()), float(means.max())


def p_column(target: str) -> str:
    """The comparisons.csv column that decides significance: bootstrap p for macro AUROC, Holm DeLong p else."""
    return "p" if target == "macro AUROC" else "p_holm"


def _significance(comparisons: pd.DataFrame, backbone: str, mask: str, target: str) -> str:
    if mask == "original":
        return ""
    rows = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                       & (comparisons["target"] == target)]
    if rows.empty:
        return ""
    ps = rows[p_column(target)].dropna()
    if ps.empty:
        return ""
    label = "bootstrap p" if target == "macro AUROC" else "Holm-adjusted DeLong p"
    if len(ps) == 1:
        p = float(ps.iloc[0])
        verdict = "significantly different from" if p < 0.05 else "not significantly different from"
        return f"{verdict} the original images ({label} = {p:.3g})"
    low, high = float(ps.min()), float(ps.max())
    if high < 0.05:
        return f"significantly different from the original images in all {len(ps)} seeds ({label} ≤ {high:.3g})"
    return (f"not significantly different from the original images in every seed ({label} {low:.3g} to "
            f"{high:.3g} over {len(ps)} seeds)")


def findings_sentences(results: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One or two sentences per backbone: best mask for abnormality (macro) AUROC and for No Finding."""
    out = []
    for backbone in dict.fromkeys(results["backbone"]):
        parts = []
        for target, cmp_target, label in (("macro", "macro AUROC", "abnormality discrimination (macro AUROC)"),
                                          (NO_FINDING, NO_FINDING, "No Finding discrimination")):
            best = _best(results, backbone, target)
            if best is None:
                continue
            mask, auc = best
            sig = _significance(comparisons, backbone, mask, cmp_target)
            orig = _best(results[results["mask"] == "original"], backbone, target)
            ref = f" vs {orig[1]:.3f} on original images" if orig and mask != "original" else ""
            parts.append(f"for {label} the best input is <b>{mask}</b> (AUROC {auc:.3f}{ref}"
                         f"{', ' + sig if sig else ''})")
        if parts:
            out.append(f"<b>{backbone}</b>: " + "; ".join(parts) + ".")
    return out
