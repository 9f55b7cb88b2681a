"""Comparing two runs on the same test images: a paired test per class, for No Finding and for the macro AUROC
(the patient jackknife with a t reference when patients have several films, DeLong with a t reference
otherwise; Obuchowski's test or a paired patient bootstrap on request), Holm-adjusted p-values across classes,
a CI for every testable difference, and each label's counts of films and patients behind the test."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

from lungprior.errors import LungpriorError
from lungprior.evaluate.calibration import apply_calibration
from lungprior.evaluate.clustered import delong_paired, obuchowski_test
from lungprior.evaluate.delong import holm_adjust_bounds
from lungprior.evaluate.jackknife import jackknife_macro_test, jackknife_test
from lungprior.evaluate.metrics import check_predictions, label_matrix, score_matrix
from lungprior.evaluate.stats import DegenerateDataWarning, auroc, no_finding_score, paired_bootstrap_diff
from lungprior.evaluate.testability import COUNT_COLUMNS, testability
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


COLUMNS = ("target", "auc_a", "auc_b", "diff", "z", "p", "p_holm", "ci_low", "ci_high", "test", "p_floor",
           *COUNT_COLUMNS, "p_bound", "p_holm_bound")
PerClassTest = Literal["auto", "jackknife", "delong", "obuchowski", "bootstrap"]
TEST_NAMES = {"jackknife": "patient jackknife, t reference (paired; patients as clusters)",
              "delong": "DeLong, t reference (paired; films independent)",
              "obuchowski": "Obuchowski clustered DeLong, t reference (paired; patients as clusters)",
              "bootstrap": "paired patient bootstrap"}


def choose_test(groups: np.ndarray, test: str = "auto") -> str:
    """The per-class test: "auto" picks "jackknife" when any patient has more than one film, else "delong"."""
    if test not in ("auto", *TEST_NAMES):
        raise LungpriorError(f"test: unknown per-class test {test!r} "
                             "(choose auto, jackknife, delong, obuchowski or bootstrap)")
    if test != "auto":
        return test
    return "jackknife" if pd.Series(groups).duplicated().any() else "delong"


def paired_class_test(y: np.ndarray, sa: np.ndarray, sb: np.ndarray, groups: np.ndarray, test: str,
                      n_resamples: int, seed: int, alpha: float = 0.05) -> dict:
    """One paired comparison of two AUROCs with the named test: AUCs, diff, z, p and the (1 - alpha) CI."""
    if test == "bootstrap":
        r = paired_bootstrap_diff(y, sa, sb, groups, n_resamples, seed, alpha)
        return {"auc_a": r["auc_a"], "auc_b": r["auc_b"], "diff": r["diff"], "z": float("nan"), "p": r["p"],
                "ci_low": r["low"], "ci_high": r["high"], "p_floor": bootstrap_p_floor(r["n_used"]),
                "test": f"{TEST_NAMES[test]} ({n_resamples})"}
    if test == "jackknife":
        r = jackknife_test(y, sa, sb, groups, alpha)
    elif test == "obuchowski":
        r = obuchowski_test(y, sa, sb, groups, alpha, t_reference=True)
    else:
        r = delong_paired(y, sa, sb, alpha, t_reference=True)
    return {"auc_a": r.auc_a, "auc_b": r.auc_b, "diff": r.diff, "z": r.z, "p": r.p, "ci_low": r.ci_low,
            "ci_high": r.ci_high, "p_floor": 0.0, "test": TEST_NAMES[test]}


def _at_floor(p: float, floor: float) -> bool:
    return bool(np.isfinite(p) and np.isfinite(floor) and floor > 0 and p <= floor * (1 + 1e-9))


def _untested(y: np.ndarray, sa: np.ndarray, sb: np.ndarray, test: str, n_resamples: int) -> dict:
    """AUCs and their difference without a test (a row below the testability minimum)."""
    nan = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        auc_a, auc_b = auroc(y, sa), auroc(y, sb)
    name = f"{TEST_NAMES[test]} ({n_resamples})" if test == "bootstrap" else TEST_NAMES[test]
    return {"auc_a": auc_a, "auc_b": auc_b, "diff": auc_a - auc_b, "z": nan, "p": nan, "ci_low": nan,
            "ci_high": nan, "p_floor": bootstrap_p_floor(n_resamples) if test == "bootstrap" else 0.0,
            "test": name}


def class_row(y: np.ndarray, sa: np.ndarray, sb: np.ndarray, groups: np.ndarray, test: str, n_resamples: int,
              seed: int, alpha: float = 0.05, min_patients: int | None = None) -> dict:
    """`paired_class_test` behind the testability rule: the counts, `testable`, `note` and `p_bound` columns;
    no z, p or CI (NaN) when the label has too few patients on a side (`min_patients` overrides the minimum)."""
    t = testability(y, groups) if min_patients is None else testability(y, groups, min_patients, min_patients)
    r = paired_class_test(y, sa, sb, groups, test, n_resamples, seed, alpha) if t.testable \
        else _untested(y, sa, sb, test, n_resamples)
    return {**r, **t.as_row(), "p_bound": _at_floor(r["p"], r["p_floor"])}


def macro_row(y: np.ndarray, sa: np.ndarray, sb: np.ndarray, groups: np.ndarray, n_resamples: int, seed: int,
              alpha: float = 0.05, test: str = "jackknife") -> dict:
    """Paired test of the macro-AUROC difference over the *testable* findings (columns of y): the jackknife
    over patients (each film its own patient when `groups` has no repeats), t with the smallest
    min(I10, I01) - 1 of the findings used; or, with test="bootstrap", the paired patient bootstrap.

    Counts are those of the least represented finding used; untestable (no p, no CI) when no finding is
    testable. The note names the findings left out.
    """
    checks = [testability(y[:, j], groups) for j in range(y.shape[1])]
    used = [j for j, t in enumerate(checks) if t.testable]
    names = [FINDINGS[j] if y.shape[1] == len(FINDINGS) else str(j) for j in range(y.shape[1])]
    left_out = [names[j] for j in range(y.shape[1]) if j not in used]
    nan = float("nan")
    name = f"{TEST_NAMES['bootstrap']} ({n_resamples})" if test == "bootstrap" else TEST_NAMES["jackknife"]
    if not used:
        counts = {c: min(getattr(t, c) for t in checks) for c in COUNT_COLUMNS[:4]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            auc_a = float(np.nanmean([auroc(y[:, j], sa[:, j]) for j in range(y.shape[1])]))
            auc_b = float(np.nanmean([auroc(y[:, j], sb[:, j]) for j in range(y.shape[1])]))
        return {"auc_a": auc_a, "auc_b": auc_b, "diff": auc_a - auc_b, "z": nan, "p": nan, "ci_low": nan,
                "ci_high": nan, "p_floor": bootstrap_p_floor(n_resamples) if test == "bootstrap" else 0.0,
                "test": name, **counts,
                "testable": False, "note": "not testable: no finding is testable", "p_bound": False}
    if test == "bootstrap":
        boot = paired_bootstrap_diff(y[:, used], sa[:, used], sb[:, used], groups, n_resamples, seed, alpha)
        floor = bootstrap_p_floor(boot["n_used"])
    else:
        r = jackknife_macro_test(y[:, used], sa[:, used], sb[:, used], groups, alpha)
        boot = {"auc_a": r.auc_a, "auc_b": r.auc_b, "diff": r.diff, "p": r.p, "low": r.ci_low, "high": r.ci_high,
                "z": r.z}
        floor = 0.0
    weakest = min((checks[j] for j in used), key=lambda t: (t.n_pos_patients, t.n_neg_patients))
    note = f"over {len(used)} of {len(names)} findings ({', '.join(left_out)} not testable)" if left_out else ""
    return {"auc_a": boot["auc_a"], "auc_b": boot["auc_b"], "diff": boot["diff"], "z": boot.get("z", nan),
            "p": boot["p"], "ci_low": boot["low"], "ci_high": boot["high"], "p_floor": floor, "test": name,
            **{c: getattr(weakest, c) for c in COUNT_COLUMNS[:4]}, "testable": True, "note": note,
            "p_bound": _at_floor(boot["p"], floor)}


def bootstrap_p_floor(n_used: int) -> float:
    """The smallest p-value the paired bootstrap can report with `n_used` resamples: 2 / (B + 1)."""
    return min(1.0, 2.0 / (n_used + 1)) if n_used else float("nan")


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, *, names: tuple[str, str] = ("A", "B"), n_resamples: int = 1000,
    seed: int = 0, no_finding: str = "max", test: PerClassTest = "auto", alpha: float = 0.05,
    calibration: tuple[dict | None, dict | None] = (None, None),
) -> pd.DataFrame:
    """One row per finding, one for No Finding and one for the macro AUROC: AUCs, difference A - B, its
    (1 - alpha) CI, p, Holm-adjusted p (over the testable findings and No Finding), the test that ran, the
    counts behind it (`COUNT_COLUMNS`) and whether p / p_holm are upper bounds (`p_bound`, `p_holm_bound`).

    Per class and for No Finding the test is `test` ("auto": the patient jackknife when any patient has
    several films, else DeLong; both with a t reference); the macro row uses the jackknife over the testable
    findings (the paired patient bootstrap when `test` is "bootstrap"). A row below the testability minimum
    keeps its AUCs and difference but gets NaN z, p and CI and a `note` saying why. `p_floor` is the smallest
    p the row's test can give (2 / (B + 1) for a bootstrap of B resamples, 0 for the analytic tests): a p at
    it is a bound ("p ≤ p_floor"). `calibration` holds each run's Platt calibration (or None): when both are
    given, the No Finding score uses calibrated probabilities.
    """
    a, b = align(a, b, names)
    groups = a["patient_id"].astype(str).to_numpy()
    method = choose_test(groups, test)
    y, sa, sb = label_matrix(a), score_matrix(a), score_matrix(b)
    rows = [{"target": k, **class_row(y[:, j], sa[:, j], sb[:, j], groups, method, n_resamples, seed, alpha)}
            for j, k in enumerate(FINDINGS)]
    nf = a[NO_FINDING].to_numpy()
    calibrated = all(c is not None for c in calibration)
    ca, cb = (score_matrix(apply_calibration(d, c)) for d, c in zip((a, b), calibration, strict=True)) \
        if calibrated else (sa, sb)
    r = class_row(nf, no_finding_score(ca, no_finding), no_finding_score(cb, no_finding), groups, method,
                  n_resamples, seed, alpha)
    probs = "calibrated" if calibrated else "raw"
    rows.append({"target": NO_FINDING, **r, "test": f"{r['test']}, score {no_finding} of {probs} probabilities"})
    macro_test = "bootstrap" if method == "bootstrap" else "jackknife"
    rows.append({"target": "macro AUROC", **macro_row(y, sa, sb, groups, n_resamples, seed, alpha, macro_test)})
    table = pd.DataFrame(rows)
    family = table["target"] != "macro AUROC"  # Holm over the testable findings and No Finding
    holm, holm_bound = holm_adjust_bounds(table.loc[family, "p"].to_numpy(), table.loc[family, "p_bound"].to_numpy())
    table["p_holm"], table["p_holm_bound"] = np.nan, False
    table.loc[family, "p_holm"], table.loc[family, "p_holm_bound"] = holm, holm_bound
    table = table[list(COLUMNS)]
    table.insert(0, "b", names[1])
    table.insert(0, "a", names[0])
    return table
