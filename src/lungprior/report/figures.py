"""Figures of the report, each returned as an embeddable PNG data URI."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import roc_curve

from lungprior.evaluate.metrics import score_matrix
from lungprior.evaluate.stats import no_finding_score
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import score_column
from lungprior.plotting import plt

MODE_ORDER = {"tight": 0, "crop": 1, "loose": 2, "bbox": 3, "soft": 4, "prior": 5, "original": 6, "nolung": 7}


def to_data_uri(fig: plt.Figure, dpi: int = 100) -> str:
    """Render a figure to a base64 PNG data URI and close it (trimmed to its content, nothing cut off)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_file_uri(path: str, max_width: int = 900) -> str:
    """Embed an existing PNG file (downscaled to `max_width`)."""
    img = Image.open(path).convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def looseness_order(masks: list[str]) -> list[str]:
    """Masks from tight to original: tight, crop, loose by radius, bbox, soft by alpha, prior-loss, original, nolung."""
    def key(m: str) -> tuple:
        mode = m.split("-")[0]
        number = "".join(ch for ch in m.split("-")[1] if ch.isdigit() or ch == ".") if "-" in m else ""
        return (MODE_ORDER.get(mode, 9), float(number) if number else 0.0, m)

    return sorted(dict.fromkeys(masks), key=key)


def roc_figure(predictions: dict[str, pd.DataFrame], no_finding: str) -> str:
    """ROC curves per finding and for No Finding, one line per mask."""
    fig, grid = plt.subplots(2, 3, figsize=(9.0, 6.2), sharex=True, sharey=True, layout="constrained")
    axes = grid.ravel()
    for ax, target in zip(axes, (*FINDINGS, NO_FINDING), strict=True):
        for mask, df in predictions.items():
            if target == NO_FINDING:
                y = df[NO_FINDING].to_numpy()
                s = no_finding_score(score_matrix(df), no_finding)
            else:
                y, s = df[target].to_numpy(), df[score_column(target)].to_numpy()
            if y.min() == y.max():
                continue
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, lw=1.3, label=mask)
        ax.plot([0, 1], [0, 1], color="#999", lw=0.6, ls="--")
        ax.set_title(target, fontsize=10)
        ax.tick_params(labelsize=9)
    for ax in grid[-1]:
        ax.set_xlabel("1 − specificity", fontsize=9)
    for ax in grid[:, 0]:
        ax.set_ylabel("sensitivity", fontsize=9)
    handles, labels = next(((h, lab) for h, lab in (a.get_legend_handles_labels() for a in axes) if h), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    return to_data_uri(fig)


def auroc_bars(results: pd.DataFrame, target: str, title: str) -> str:
    """AUROC with 95% CI per mask (x) and backbone (bars), for one target (e.g. "macro" or "No Finding")."""
    sub = results[results["class"] == target]
    masks = looseness_order(sub["mask"].tolist())
    backbones = list(dict.fromkeys(sub["backbone"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 + 1.2 * len(masks)), 3.6), layout="constrained")
    width = 0.8 / max(1, len(backbones))
    for b, backbone in enumerate(backbones):
        part = sub[sub["backbone"] == backbone].groupby("mask")[["auroc", "ci_low", "ci_high"]].mean()
        part = part.reindex(masks)
        x = np.arange(len(masks)) + b * width
        err = np.vstack([part["auroc"] - part["ci_low"], part["ci_high"] - part["auroc"]])
        ax.bar(x, part["auroc"], width, yerr=np.nan_to_num(err), capsize=3, label=backbone)
    ax.set_xticks(np.arange(len(masks)) + 0.4 - width / 2, masks, rotation=20, fontsize=9, ha="right")
    ax.set_ylim(auroc_floor(sub), 1.0)
    ax.axhline(0.5, color="#999", lw=0.6, ls="--")
    ax.set_ylabel("AUROC (95% CI)", fontsize=9)
    ax.tick_params(axis="y", labelsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def auroc_floor(rows: pd.DataFrame) -> float:
    """Where an AUROC axis starts: 0.5, or below it the lowest AUROC or CI bound rounded down to 0.1."""
    values = rows[[c for c in ("auroc", "ci_low") if c in rows.columns]].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values)]
    low = min(0.5, float(values.min())) if values.size else 0.5
    return max(0.0, float(np.floor(low * 10 + 1e-9) / 10))


def efficiency_figure(eff: pd.DataFrame) -> str:
    """Seconds per epoch and seconds to the best epoch per mask and backbone."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    masks = looseness_order(eff["mask"].tolist())
    for ax, col, label in zip(axes, ("seconds_per_epoch", "seconds_to_best"), ("s / epoch", "s to best epoch"),
                              strict=True):
        table = eff.pivot_table(index="mask", columns="backbone", values=col, aggfunc="mean").reindex(masks)
        table.plot.bar(ax=ax, rot=20, fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.set_xlabel("")
        ax.legend(fontsize=8)
    return to_data_uri(fig)


def looseness_figure(results: pd.DataFrame) -> str:
    """Macro and No Finding AUROC as a function of looseness, per backbone."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True, layout="constrained")
    masks = looseness_order(results["mask"].tolist())
    for ax, target in zip(axes, ("macro", NO_FINDING), strict=True):
        sub = results[results["class"] == target]
        for backbone, part in sub.groupby("backbone"):
            means = part.groupby("mask")["auroc"].mean().reindex(masks)
            ax.plot(range(len(masks)), means.to_numpy(), marker="o", label=backbone)
        ax.set_xticks(range(len(masks)), masks, rotation=20, fontsize=9, ha="right")
        ax.set_title(f"{target} AUROC vs looseness", fontsize=10)
        ax.tick_params(axis="y", labelsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("AUROC (mean over seeds)", fontsize=9)
    axes[0].set_ylim(auroc_floor(results[results["class"].isin(["macro", NO_FINDING])]), 1.0)
    return to_data_uri(fig)


def histogram(values: np.ndarray, title: str, xlabel: str) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 2.6))
    ax.hist(values[np.isfinite(values)], bins=30, color="#4a7bd0")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def mask_overlay_figure(images: list[np.ndarray], lungs: list[np.ndarray], specs: list, spacing: list[float | None],
                        titles: list[str]) -> str:
    """Images with the tight outline (green) and each other mask setting's outline (one colour each)."""
    from lungprior.masks import kept_region

    colors = ["#34c759", "#ff9500", "#af52de", "#00c7be", "#ff3b30"]
    fig, axes = plt.subplots(1, len(images), figsize=(3.0 * len(images), 3.2), squeeze=False)
    for ax, img, lung, sp, title in zip(axes[0], images, lungs, spacing, titles, strict=True):
        ax.imshow(img, cmap="gray")
        for spec, color in zip(specs, colors, strict=False):
            region = kept_region(lung, spec, sp)
            ax.contour(region, levels=[0.5], colors=color, linewidths=0.8)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=s.key()) for s, c in zip(specs, colors, strict=False)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return to_data_uri(fig)
