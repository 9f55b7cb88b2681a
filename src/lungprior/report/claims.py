"""The one significance rule of the report: which p decides a claim, how it is printed, when no claim is made.

Every claim (headline, findings, table markers, recommendation) reads the Holm-adjusted p of its row in
`comparisons.csv`: per class and No Finding, Holm over the five findings and No Finding of one comparison;
macro AUROC, Holm over the masked inputs compared with the same original run (`experiment.tables`). A p at a
bootstrap's floor, or its Holm adjustment, is a bound and prints "p ≤ x". A row marked not testable (too
few patients with or without the finding) is never significant; its note says why.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lungprior.evaluate.testability import format_p
from lungprior.experiment.tables import MACRO, add_macro_holm, as_bool

ALPHA = 0.05


def prepare(comparisons: pd.DataFrame) -> pd.DataFrame:
    """`comparisons.csv` with the claim columns filled where an older file lacks them: p_bound, p_holm_bound,
    macro p_holm (Holm over masked inputs), testable (True where a p exists) and note."""
    if comparisons.empty:
        return comparisons
    out = comparisons.copy()
    macro = out["target"] == MACRO
    if "p_holm_bound" not in out.columns or out.loc[macro, "p_holm"].isna().all():
        out = add_macro_holm(out)
    if "testable" not in out.columns:
        out["testable"] = True
    out["testable"] = out["testable"].map(lambda v: True if pd.isna(v) else as_bool(v))
    out["note"] = out["note"].fillna("").astype(str) if "note" in out.columns else ""
    return out


def read_comparisons(exp: Path) -> pd.DataFrame:
    """The experiment's comparisons.csv, prepared for claims."""
    return prepare(pd.read_csv(exp / "comparisons.csv"))


def claim_p(row: pd.Series) -> tuple[float, bool]:
    """The p that decides the row's claim and whether it is a bound: (p_holm, p_holm_bound); NaN if untestable."""
    if not testable(row):
        return math.nan, False
    p = row.get("p_holm")
    p = math.nan if p is None or pd.isna(p) else float(p)
    return p, as_bool(row.get("p_holm_bound", False))


def p_bounds_row(row: pd.Series) -> bool:
    """Whether the row's unadjusted p is a bound (the bootstrap's floor)."""
    return as_bool(row.get("p_bound", False))


def testable(row: pd.Series) -> bool:
    t = row.get("testable", True)
    return True if t is None or (isinstance(t, float) and math.isnan(t)) else as_bool(t)


def significant(row: pd.Series) -> bool:
    """Testable and its adjusted p below 0.05."""
    p, _ = claim_p(row)
    return not math.isnan(p) and p < ALPHA


def p_text(row: pd.Series) -> str:
    """'p = 0.031' or 'p ≤ 0.002' (a bound) from the adjusted p; the row's note when it is not testable."""
    if not testable(row):
        return str(row.get("note") or "not testable")
    return format_p(*claim_p(row))


def short_note(note: str) -> str:
    """'2 films with the finding from 1 patient' from a testability note."""
    return str(note).removeprefix("not testable: ").split(" (needs")[0]


def family(target: str, n_masks: int | None = None) -> str:
    """What the adjusted p is adjusted over, in words."""
    if target == MACRO:
        return (f"Holm over {n_masks} masked inputs" if n_masks and n_masks > 1 else "Holm over the masked inputs") \
            if n_masks != 1 else "one masked input, no adjustment"
    return "Holm over the five findings and No Finding"
