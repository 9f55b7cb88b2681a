"""A short findings section written from the numbers, and the per-seed verdicts the report's tables share.

Significance is stated per seed with its direction ("higher in 3/3 seeds, significantly in 2/3"), never as
"significant in any seed", from the adjusted p of `report.claims` (the headline's rule); the best mask is picked
by mean test AUROC over seeds, which the sentence says, since the test against the original images does not
adjust for that choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungprior.experiment.tables import MACRO
from lungprior.labels import NO_FINDING
from lungprior.masks.spec import CONTROL_MODES
from lungprior.report import claims
from lungprior.report.claims import ALPHA


def _best(results: pd.DataFrame, backbone: str, target: str) -> tuple[str, float] | None:
    sub = results[(results["backbone"] == backbone) & (results["class"] == target)]
    if "mode" in sub.columns:  # a control (the lungs removed) is reported, never picked as the best input
        sub = sub[~sub["mode"].isin(CONTROL_MODES)]
    means = sub.groupby("mask")["auroc"].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmax()), float(means.max())


def p_column(target: str) -> str:
    """The comparisons.csv column that decides significance: the Holm-adjusted p, for every target."""
    return "p_holm"


def p_label(rows: pd.DataFrame, target: str) -> str:
    """What the deciding p-value is, e.g. "Holm-adjusted p, Obuchowski clustered DeLong (paired; ...)"."""
    if target == MACRO:
        return "Holm-adjusted paired patient bootstrap p"
    tests = rows["test"].dropna().astype(str) if "test" in rows.columns else pd.Series(dtype=str)
    name = tests.iloc[0].split(",")[0] if not tests.empty else "DeLong (paired)"
    return f"Holm-adjusted p, {name}"


def seed_counts(rows: pd.DataFrame, target: str) -> dict[str, int]:
    """Seeds compared, seeds with a higher / lower AUROC than the reference, those significant (adjusted p < 0.05)
    and those not testable (never counted significant)."""
    if rows.empty:
        return {"n": 0, "higher": 0, "lower": 0, "sig_higher": 0, "sig_lower": 0, "untestable": 0}
    ok_test = rows.apply(claims.testable, axis=1)
    ok = rows[ok_test & rows["diff"].notna() & rows[p_column(target)].notna()]
    d = ok["diff"].to_numpy(dtype=float)
    sig = ok.apply(claims.significant, axis=1).to_numpy(dtype=bool) if not ok.empty else np.zeros(0, bool)
    return {"n": int(d.size), "higher": int((d > 0).sum()), "lower": int((d < 0).sum()),
            "sig_higher": int(((d > 0) & sig).sum()), "sig_lower": int(((d < 0) & sig).sum()),
            "untestable": int((~ok_test).sum())}


def seed_verdict(rows: pd.DataFrame, target: str, versus: str = "the original images") -> str:
    """E.g. "higher than the original images in 3/3 seeds, significantly in 2/3 (Holm-adjusted p ...)"."""
    c = seed_counts(rows, target)
    if c["n"] == 0:
        if c["untestable"]:
            return f"not testable against {versus}: {str(rows['note'].iloc[0]).removeprefix('not testable: ')}"
        return ""
    label = p_label(rows, target)
    untestable = f"; not testable in {c['untestable']} seed(s)" if c["untestable"] else ""
    if c["n"] == 1:
        r = rows[rows.apply(claims.testable, axis=1) & rows[p_column(target)].notna()].iloc[0]
        ci = ""
        if {"ci_low", "ci_high"} <= set(r.index) and pd.notna(r["ci_low"]):
            ci = f", difference {r['diff']:+.3f}, 95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}"
        word = "higher than" if r["diff"] > 0 else "lower than" if r["diff"] < 0 else "equal to"
        sig = "significantly " if claims.significant(r) else "not significantly "
        return f"{sig}{word} {versus} ({label} {claims.p_text(r).removeprefix('p ')}{ci}){untestable}"
    main = "higher" if c["higher"] >= c["lower"] else "lower"
    other = "lower" if main == "higher" else "higher"
    text = (f"{main} than {versus} in {c[main]}/{c['n']} seeds, significantly in {c['sig_' + main]}/{c['n']}")
    if c["sig_" + other]:
        text += f" and significantly {other} in {c['sig_' + other]}/{c['n']}"
    return f"{text} ({label} < {ALPHA:g} per seed){untestable}"


def seed_marker(rows: pd.DataFrame, target: str) -> tuple[str, bool]:
    """A short cell marker, e.g. "↑3/3 (sig. 2)", and whether every seed is significant in one direction;
    "not testable" when no seed's comparison could be tested."""
    c = seed_counts(rows, target)
    if c["n"] == 0:
        return ("not testable", False) if c["untestable"] else ("", False)
    up = c["higher"] >= c["lower"]
    arrow, k, s = ("↑", c["higher"], c["sig_higher"]) if up else ("↓", c["lower"], c["sig_lower"])
    return f"{arrow}{k}/{c['n']} (sig. {s})", s == c["n"] and c["untestable"] == 0


def _significance(comparisons: pd.DataFrame, backbone: str, mask: str, target: str) -> str:
    if mask == "original" or comparisons.empty:  # a study without an original run has nothing to compare
        return ""
    rows = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                       & (comparisons["target"] == target)]
    return "" if rows.empty else seed_verdict(rows, target)


def findings_sentences(results: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One or two sentences per backbone: best mask (by mean test AUROC) for abnormality (macro) AUROC and for
    No Finding, with the per-seed comparison against the original images."""
    comparisons = claims.prepare(comparisons)
    out, tested = [], False
    for backbone in dict.fromkeys(results["backbone"]):
        parts = []
        n_seeds = int(results[results["backbone"] == backbone]["seed"].nunique()) if "seed" in results else 1
        for target, cmp_target, label in (("macro", "macro AUROC", "abnormality discrimination (macro AUROC)"),
                                          (NO_FINDING, NO_FINDING, "No Finding discrimination")):
            best = _best(results, backbone, target)
            if best is None:
                continue
            mask, auc = best
            sig = _significance(comparisons, backbone, mask, cmp_target)
            tested = tested or bool(sig)
            orig = _best(results[results["mask"] == "original"], backbone, target)
            ref = f" vs {orig[1]:.3f} on original images" if orig and mask != "original" else ""
            how = "mean test AUROC" + (f" over {n_seeds} seeds" if n_seeds > 1 else "")
            parts.append(f"for {label} the input with the highest {how} is <b>{mask}</b> ({auc:.3f}{ref}"
                         f"{'; ' + sig if sig else ''})")
        if parts:
            out.append(f"<b>{backbone}</b>: " + "; ".join(parts) + ".")
    if tested:
        out.append("The best input is chosen by looking at the test AUROCs; its test against the original images "
                   "is not adjusted for that choice.")
    return out
