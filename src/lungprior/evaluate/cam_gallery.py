"""A gallery of Grad-CAM maps over the images the model saw, with lung and lesion outlines.

One row per finding, one column per kept film. A cell is never left blank without a word: where the split has
fewer films with the finding than columns, the cell says so; a constant (flat) CAM is named in its tile's title.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lungprior.data.atomic import atomic_path
from lungprior.labels import FINDINGS
from lungprior.plotting import plt

if TYPE_CHECKING:  # the gallery itself needs no torch
    from lungprior.evaluate.cam import CamExample

EMPTY_CELL = "no other film\nwith {finding}\nin the split"
FLAT = "flat CAM"
CAPTION = ("Rows: findings; columns: test films with the finding. An empty cell: the split has no further film "
           "with that finding (a finding with none has no row). "
           "“flat CAM”: Grad-CAM was constant on that film, so its overlay carries no location.")


def write_cam_gallery(examples: list[CamExample], out_png: str | os.PathLike[str], title: str = "",
                      dpi: int = 90) -> Path:
    """Write the grid: each tile is the input image with its CAM (jet, alpha 0.45), lungs green, lesion red."""
    cells = gallery_cells(examples)
    cols = len(cells[0][1])
    fig, axes = plt.subplots(len(cells), cols, figsize=(2.4 * cols + 0.4, 2.5 * len(cells) + 0.4), squeeze=False)
    for r, (_, row) in enumerate(cells):
        for c, cell in enumerate(row):
            ax = axes[r, c]
            ax.axis("off")
            if isinstance(cell, str):
                ax.text(0.5, 0.5, cell, ha="center", va="center", fontsize=8, color="#777", transform=ax.transAxes)
            else:
                _tile(ax, cell)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return out


def gallery_cells(examples: list[CamExample]) -> list[tuple[str, list[CamExample | str]]]:
    """Per finding (in label order), its examples padded to a common width with the text of an empty cell."""
    findings = [f for f in FINDINGS if any(ex.finding == f for ex in examples)]
    findings += sorted({ex.finding for ex in examples} - set(findings))
    if not findings:
        return [("", ["no film with a finding in the split"])]
    per_row = {f: [ex for ex in examples if ex.finding == f] for f in findings}
    cols = max(len(v) for v in per_row.values())
    return [(f, [*per_row[f], *[EMPTY_CELL.format(finding=f)] * (cols - len(per_row[f]))]) for f in findings]


def _tile(ax: plt.Axes, ex: CamExample) -> None:
    ax.imshow(ex.image, cmap="gray", vmin=0, vmax=255)
    flat = not float(np.max(ex.cam)) > float(np.min(ex.cam))
    if not flat:
        ax.imshow(ex.cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if ex.lungs is not None and ex.lungs.any():
        ax.contour(ex.lungs, levels=[0.5], colors="#34c759", linewidths=0.7)
    if ex.lesion is not None and ex.lesion.any():
        ax.contour(ex.lesion, levels=[0.5], colors="#ff3b30", linewidths=0.7)
    ax.set_title(f"{ex.finding}\n{ex.image_id}" + (f" ({FLAT})" if flat else ""), fontsize=8)
