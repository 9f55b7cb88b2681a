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


def _significance(comparisons: pd.DataFrame, backbone: str, mask: str, target: str) -> str:
    if mask == "original":
        return ""
    rows = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                       & (comparisons["target"] == target)]
    if rows.empty:
        return ""
    col = "p" if target == "macro AUROC" else "p_holm"
    p = rows[col].max()
    n = len(rows)
    seeds = f" in all {n} seeds" if n > 1 else ""
    verdict = "significantly different from" if p < 0.05 else "not significantly different from"
    label = "bootstrap p" if target == "macro AUROC" else "Holm-adjusted DeLong p"
    return f"{verdict} the original images ({label} ≤ {p:.3g}{seeds})"


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
