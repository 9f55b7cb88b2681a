"""Comparing two runs on the same test images: paired DeLong per class and for No Finding, paired
clustered bootstrap of the macro-AUROC difference, Holm-adjusted p-values across classes."""

from __future__ import annotations

import pandas as pd

from lungprior.errors import LungpriorError
from lungprior.evaluate.metrics import check_predictions, label_matrix, score_matrix
from lungprior.evaluate.stats import delong_test, holm_adjust, no_finding_score, paired_bootstrap_diff
from lungprior.labels import FINDINGS, NO_FINDING


def align(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("A", "B")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Order both prediction tables by image; refuse unless they cover the same images with the same labels."""
    check_predictions(a, f"{names[0]} predictions")
    check_predictions(b, f"{names[1]} predictions")
    ids_a, ids_b = set(a["image_id"]), set(b["image_id"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b), sorted(ids_b - ids_a)
        raise LungpriorError(
            f"{names[0]} and {names[1]} were not evaluated on the same images "
            f"({len(only_a)} only in {names[0]}, e.g. {only_a[:2]}; "
            f"{len(only_b)} only in {names[1]}, e.g. {only_b[:2]})"
        )
    a = a.sort_values("image_id").reset_index(drop=True)
    b = b.sort_values("image_id").reset_index(drop=True)
    cols = [*FINDINGS, NO_FINDING]
    if not (a[cols].to_numpy() == b[cols].to_numpy()).all():
        raise LungpriorError(f"{names[0]} and {names[1]} disagree on the labels of the same images")
    return a, b


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, *, names: tuple[str, str] = ("A", "B"), n_resamples: int = 1000,
    seed: int = 0, no_finding: str = "max",
) -> pd.DataFrame:
    """One row per finding, one for No Finding and one for the macro AUROC: AUCs, difference A - B, test, p."""
    a, b = align(a, b, names)
    y, sa, sb = label_matrix(a), score_matrix(a), score_matrix(b)
    rows = []
    for j, k in enumerate(FINDINGS):
        r = delong_test(y[:, j], sa[:, j], sb[:, j])
        rows.append({"target": k, "auc_a": r.auc_a, "auc_b": r.auc_b, "diff": r.diff, "z": r.z, "p": r.p,
                     "test": "DeLong (paired)"})
    nf = a[NO_FINDING].to_numpy()
    r = delong_test(nf, no_finding_score(sa, no_finding), no_finding_score(sb, no_finding))
    rows.append({"target": NO_FINDING, "auc_a": r.auc_a, "auc_b": r.auc_b, "diff": r.diff, "z": r.z, "p": r.p,
                 "test": f"DeLong (paired), score {no_finding}"})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm_adjust(table["p"].to_numpy())  # across the five findings and No Finding
    boot = paired_bootstrap_diff(y, sa, sb, a["patient_id"].astype(str).to_numpy(), n_resamples, seed)
    macro = {"target": "macro AUROC", "auc_a": boot["auc_a"], "auc_b": boot["auc_b"], "diff": boot["diff"],
             "z": float("nan"), "p": boot["p"], "p_holm": float("nan"), "ci_low": boot["low"],
             "ci_high": boot["high"], "test": f"paired patient bootstrap ({n_resamples})"}
    table = pd.concat([table, pd.DataFrame([macro])], ignore_index=True)
    table.insert(0, "b", names[1])
    table.insert(0, "a", names[0])
    return table
