"""The picture of one scored film: the film with its lung outline, the Grad-CAM of the top finding, the scores."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from lungprior.data.atomic import atomic_path
from lungprior.labels import FINDINGS

#: The film panel is drawn at most this many pixels on its longest side.
PANEL_SIZE = 512


def film_figure(
    path: str | os.PathLike[str], image: np.ndarray, lungs: np.ndarray, view: np.ndarray | None,
    cam: np.ndarray | None, probs: np.ndarray | None, *, title: str, top: int | None, note: str = "",
) -> None:
    """Write a PNG: film + lung outline | model input + Grad-CAM of `top` | bar chart of the five scores."""
    small, outline = _downsize(image, lungs)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    axes[0].imshow(small, cmap="gray", vmin=0, vmax=1)
    if outline.any():
        axes[0].contour(outline.astype(float), levels=[0.5], colors=["#00d0ff"], linewidths=1.0)
    axes[0].set_title("film and lung outline", fontsize=9)
    if view is not None and cam is not None and top is not None:
        axes[1].imshow(view, cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        axes[1].set_title(f"Grad-CAM: {FINDINGS[top]}", fontsize=9)
    elif view is not None:
        axes[1].imshow(view, cmap="gray", vmin=0, vmax=255)
        axes[1].set_title("model input (no Grad-CAM)", fontsize=9)
    else:
        axes[1].text(0.5, 0.5, "not scored", ha="center", va="center")
    for ax in axes[:2]:
        ax.set_axis_off()
    ax = axes[2]
    if probs is not None:
        colors = ["#c0392b" if k == top else "#7f8c8d" for k in range(len(FINDINGS))]
        ax.barh(list(FINDINGS)[::-1], probs[::-1], color=colors[::-1])
        for k, p in enumerate(probs[::-1]):
            ax.text(min(float(p) + 0.02, 0.8), k, f"{p:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability", fontsize=8)
    ax.tick_params(labelsize=8)
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def _downsize(image: np.ndarray, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape
    r = min(1.0, PANEL_SIZE / max(h, w))
    if r >= 1.0:
        return image, lungs
    size = (max(1, round(w * r)), max(1, round(h * r)))
    small = np.asarray(Image.fromarray(image.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    outline = np.asarray(Image.fromarray(lungs.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 127
    return small, outline
