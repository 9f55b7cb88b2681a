"""The forest plot: masked − original AUROC per class, No Finding and macro, with 95% CIs and the significance rule.

One panel per backbone, one row group per masked input, one row per target; several seeds sit as small vertical
offsets within a row (first seed on top). Significance is read from `report.claims` (the headline's rule), never
recomputed: filled marker = adjusted p < 0.05, open = not significant, grey hollow "not testable" = no CI and no p.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from lungprior.experiment.tables import MACRO
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.plotting import plt
from lungprior.report import claims
from lungprior.report.figures import looseness_order, to_data_uri

TARGETS = (*FINDINGS, NO_FINDING, MACRO)
UNTESTABLE = "#9a9a9a"
ROW_INCHES = 0.3


def forest_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The comparisons with the original images, one row per backbone × mask × seed × target, with `status`:
    'significant', 'not significant', 'not testable' or 'n/a' (no difference computed)."""
    df = claims.prepare(comparisons)
    if df.empty:
        return df.assign(status=pd.Series(dtype=str))
    if "versus" in df.columns:
        df = df[df["versus"].fillna("original") == "original"]
    df = df[df["target"].isin(TARGETS)].copy()

    def status(row: pd.Series) -> str:
        if not claims.testable(row):
            return "not testable"
        if pd.isna(row.get("diff")):
            return "n/a"
        return "significant" if claims.significant(row) else "not significant"

    df["status"] = [status(r) for _, r in df.iterrows()] if not df.empty else []
    return df


def _layout(rows: pd.DataFrame) -> tuple[list[str], list[str], list]:
    backbones = list(dict.fromkeys(rows["backbone"].astype(str)))
    masks = [m for m in looseness_order(rows["mask"].astype(str).tolist()) if m != "original"]
    seeds = sorted(dict.fromkeys(rows["seed"].tolist())) if "seed" in rows.columns else [None]
    return backbones, masks, seeds


def _xlim(rows: pd.DataFrame) -> tuple[float, float]:
    shown = rows[rows["status"].isin(["significant", "not significant"])]  # an untestable row draws no CI
    values = shown[["diff", "ci_low", "ci_high"]].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    reach = max(0.1, float(np.abs(values).max()) if values.size else 0.1)
    reach = np.ceil(reach * 1.15 * 20) / 20  # a margin, rounded up to 0.05
    return -reach, reach


def forest_figure(comparisons: pd.DataFrame) -> str | None:
    """The forest plot as a PNG data URI; None when there is no comparison with the original images."""
    rows = forest_rows(comparisons)
    if rows.empty:
        return None
    backbones, masks, seeds = _layout(rows)
    n_rows = len(masks) * (len(TARGETS) + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    row_inches = ROW_INCHES * (1 + 0.2 * (len(seeds) - 1))
    fig, axes = plt.subplots(len(backbones), 1, figsize=(6.4, 1.0 + row_inches * n_rows * len(backbones)),
                             squeeze=False, layout="constrained")
    lo, hi = _xlim(rows)
    offsets = np.linspace(-0.25, 0.25, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    for ax, backbone in zip(axes[:, 0], backbones, strict=True):
        ticks, labels = [], []
        for g, mask in enumerate(masks):
            top = g * (len(TARGETS) + 1)
            color = colors[g % len(colors)]
            ax.text(lo, top, f"{mask} − original", fontsize=10, fontweight="bold", va="center", ha="left",
                    color=color)
            for t, target in enumerate(TARGETS):
                y = top + 1 + t
                ticks.append(y)
                labels.append("macro" if target == MACRO else target)
                sel = rows[(rows["backbone"].astype(str) == backbone) & (rows["mask"].astype(str) == mask)
                           & (rows["target"] == target)]
                for s, seed in enumerate(seeds):
                    one = sel[sel["seed"] == seed] if seed is not None else sel
                    if not one.empty:
                        _draw(ax, one.iloc[0], y + offsets[s], color)
                blank = [st for st in sel["status"] if st in ("not testable", "n/a")]
                if blank:
                    ax.text(0, y, "   " + blank[0], fontsize=9, color=UNTESTABLE, va="center", ha="left")
        ax.axvline(0, color="#444", lw=0.8)
        ax.set_yticks(ticks, labels, fontsize=10)
        ax.set_ylim(n_rows - 0.5, -0.7)
        ax.set_xlim(lo, hi)
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.tick_params(axis="x", labelsize=10)
        ax.set_title(backbone + (f" (seeds {', '.join(map(str, seeds))}, first on top)" if len(seeds) > 1 else ""),
                     fontsize=10)
    axes[-1, 0].set_xlabel("AUROC difference, masked − original (95% CI)", fontsize=10)
    handles = [plt.Line2D([], [], ls="", marker="o", color="#333", label="adjusted p < 0.05"),
               plt.Line2D([], [], ls="", marker="o", mfc="white", color="#333", label="not significant"),
               plt.Line2D([], [], ls="", marker="D", mfc="white", color=UNTESTABLE, label="not testable")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9, frameon=False, handletextpad=0.2,
               columnspacing=1.0)
    return to_data_uri(fig, dpi=100)


def _draw(ax: plt.Axes, row: pd.Series, y: float, color: str) -> None:
    status = row["status"]
    if status in ("not testable", "n/a"):
        ax.plot([0], [y], ls="", marker="D", ms=5, mfc="white", color=UNTESTABLE)
        return
    diff, low, high = float(row["diff"]), float(row["ci_low"]), float(row["ci_high"])
    if np.isfinite(low) and np.isfinite(high):
        ax.plot([low, high], [y, y], color=color, lw=1.3)
    ax.plot([diff], [y], ls="", marker="o", ms=6, color=color,
            mfc=color if status == "significant" else "white")


def forest_section(comparisons: pd.DataFrame) -> str:
    """The forest plot with its caption (HTML); empty when nothing was compared with the original images."""
    uri = forest_figure(comparisons)
    if uri is None:
        return ""
    return ("<h2>Masked − original, per finding</h2>"
            f'<img id="forest" src="{uri}" alt="forest plot of masked minus original AUROC">'
            "<p class='note'>Each row: the masked model's AUROC minus the original model's on the same test films, "
            "with its 95% CI (macro: the mean AUROC over the five findings). Filled marker: significant by the "
            "headline's rule (adjusted p &lt; 0.05; per class and "
            f"No Finding {html.escape(claims.family('Mass'))}; macro {html.escape(claims.family(MACRO))}); open "
            "marker: not significant. Grey “not testable”: too few patients with or without the finding for a "
            "test, so no CI and no p (the AUROC table gives the counts). Right of the line at 0: masking helps.</p>")
