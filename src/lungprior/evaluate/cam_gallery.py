"""A gallery of Grad-CAM maps over the images the model saw, with lung and lesion outlines."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lungprior.data.atomic import atomic_path
from lungprior.evaluate.cam import CamExample
from lungprior.plotting import plt


def write_cam_gallery(examples: list[CamExample], out_png: str | os.PathLike[str], title: str = "",
                      cols: int = 5, dpi: int = 80) -> Path:
    """Write a grid: each tile is the input image with its CAM (jet, alpha 0.45), lungs green, lesion red."""
    n = max(1, len(examples))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax, ex in zip(axes.flat, examples, strict=False):
        ax.imshow(ex.image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(ex.cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if ex.lungs is not None and ex.lungs.any():
            ax.contour(ex.lungs, levels=[0.5], colors="#34c759", linewidths=0.7)
        if ex.lesion is not None and ex.lesion.any():
            ax.contour(ex.lesion, levels=[0.5], colors="#ff3b30", linewidths=0.7)
        ax.set_title(f"{ex.finding}\n{ex.image_id}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return out
