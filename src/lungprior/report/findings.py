"""A short findings section written from the numbers, and the per-seed verdicts the report's tables share.

Significance is stated per seed with its direction ("higher in 3/3 seeds, significantly in 2/3"), never as
"significant in any seed"; the best mask is picked by mean test AUROC over seeds, which the sentence says,
since the test against the original images does not adjust for that choice.
"""

from __future__ import annotations

import pandas as pd

from lungprior.labels import NO_FINDING
from lungprior.masks.spec import CONTROL_MODES

ALPHA = 0.05


def _best(results: pd.DataFrame, backbone: str, target: str) -> tuple[str, float] | None:
    sub = results[(results["backbone"] == backbone) & (results["class"] == target)]
    if "mode" in sub.columns:  # a control (the lungs removed) is reported, never picked as the best input
        sub = sub[~sub["mode"].isin(CONTROL_MODES)]
    means = sub.groupby("mask")["auroc"].mean().dropna()
    if means.empty:
        return None
    return str(means.idxmax()), float(means.max())


def p_column(target: str) -> str:
    """The comparisons.csv column that decides significance: bootstrap p for macro AUROC, Holm-adjusted p else."""
    return "p" if target == "macro AUROC" else "p_holm"


def p_label(rows: pd.DataFrame, target: str) -> str:
    """What the deciding p-value is, e.g. "Holm-adjusted p, Obuchowski clustered DeLong (paired; ...)"."""
    if target == "macro AUROC":
        return "paired patient bootstrap p"
    tests = rows["test"].dropna().astype(str) if "test" in rows.columns else pd.Series(dtype=str)
    name = tests.iloc[0].split(",")[0] if not tests.empty else "DeLong (paired)"
    return f"Holm-adjusted p, {name}"


def seed_counts(rows: pd.DataFrame, target: str) -> dict[str, int]:
    """Seeds compared, seeds with a higher / lower AUROC than the reference, and those significant (p < 0.05)."""
    ok = rows[rows["diff"].notna() & rows[p_column(target)].notna()]
    d, p = ok["diff"].to_numpy(dtype=float), ok[p_column(target)].to_numpy(dtype=float)
    return {"n": int(d.size), "higher": int((d > 0).sum()), "lower": int((d < 0).sum()),
            "sig_higher": int(((d > 0) & (p < ALPHA)).sum()), "sig_lower": int(((d < 0) & (p < ALPHA)).sum())}


def seed_verdict(rows: pd.DataFrame, target: str, versus: str = "the original images") -> str:
    """E.g. "higher than the original images in 3/3 seeds, significantly in 2/3 (Holm-adjusted p ...)"."""
    c = seed_counts(rows, target)
    if c["n"] == 0:
        return ""
    label = p_label(rows, target)
    if c["n"] == 1:
        r = rows[rows[p_column(target)].notna()].iloc[0]
        p = float(r[p_column(target)])
        floor = float(r["p_floor"]) if "p_floor" in r and pd.notna(r.get("p_floor")) else 0.0
        p_text = f"< {floor:.2g} (the bootstrap's floor)" if floor > 0 and p <= floor else f"= {p:.3g}"
        ci = ""
        if {"ci_low", "ci_high"} <= set(r.index) and pd.notna(r["ci_low"]):
            ci = f", difference {r['diff']:+.3f}, 95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}"
        word = "higher than" if r["diff"] > 0 else "lower than" if r["diff"] < 0 else "equal to"
        sig = "significantly " if p < ALPHA else "not significantly "
        return f"{sig}{word} {versus} ({label} {p_text}{ci})"
    main = "higher" if c["higher"] >= c["lower"] else "lower"
    other = "lower" if main == "higher" else "higher"
    text = (f"{main} than {versus} in {c[main]}/{c['n']} seeds, significantly in {c['sig_' + main]}/{c['n']}")
    if c["sig_" + other]:
        text += f" and significantly {other} in {c['sig_' + other]}/{c['n']}"
    return f"{text} ({label} < {ALPHA:g} per seed)"


def seed_marker(rows: pd.DataFrame, target: str) -> tuple[str, bool]:
    """A short cell marker, e.g. "↑3/3 (sig. 2)", and whether every seed is significant in one direction."""
    c = seed_counts(rows, target)
    if c["n"] == 0:
        return "", False
    up = c["higher"] >= c["lower"]
    arrow, k, s = ("↑", c["higher"], c["sig_higher"]) if up else ("↓", c["lower"], c["sig_lower"])
    return f"{arrow}{k}/{c['n']} (sig. {s})", s == c["n"]


def _significance(comparisons: pd.DataFrame, backbone: str, mask: str, target: str) -> str:
    if mask == "original" or comparisons.empty:  # a study without an original run has nothing to compare
        return ""
    rows = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                       & (comparisons["target"] == target)]
    return "" if rows.empty else seed_verdict(rows, target)


def findings_sentences(results: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One or two sentences per backbone: best mask (by mean test AUROC) for abnormality (macro) AUROC and for
    No Finding, with the per-seed comparison against the original images."""
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
