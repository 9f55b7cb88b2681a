"""A gallery of lung-mask priors: the tight outline vs the chosen mask on each film, and the masked film."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.data.atomic import atomic_path
from lungprior.data.io import read_image, read_mask
from lungprior.data.manifest import read_manifest, resolve
from lungprior.errors import LungpriorError
from lungprior.layout import mask_path_for, resolve_masks_dir
from lungprior.masks.ops import tight_mask
from lungprior.masks.spec import MaskSpec, apply_prior, prior_weight
from lungprior.plotting import plt

TIGHT_COLOR = "#34c759"
CHOSEN_COLOR = "#ff9500"


@dataclass
class GalleryResult:
    """The written PNG, the image ids shown and those skipped (with the reason)."""

    path: Path
    shown: list[str]
    skipped: list[tuple[str, str]]


def _panel_data(df: pd.DataFrame, row: pd.Series, masks_dir: Path, spec: MaskSpec) -> tuple:
    image, meta = read_image(resolve(df, row["path"]))
    lungs = read_mask(mask_path_for(masks_dir, str(row["image_id"])), shape=image.shape)
    spacing = row.get("pixel_spacing_mm")
    spacing = float(spacing) if spacing is not None and np.isfinite(spacing) else meta.pixel_spacing_mm
    weight = prior_weight(lungs, spec, spacing)
    label = spec.key() if spec.mode != "loose" else f"{spec.key()}: {spec.radius_in_px(spacing):.1f} px"
    return image, tight_mask(lungs), weight, apply_prior(image, weight, spec.fill), label


def write_mask_gallery(
    manifest: str | os.PathLike[str],
    seg_dir: str | os.PathLike[str],
    spec: MaskSpec,
    out_png: str | os.PathLike[str],
    *,
    n: int = 8,
    image_ids: list[str] | None = None,
    per_row: int = 2,
    dpi: int = 100,
) -> GalleryResult:
    """Write a grid: per image, the film with the tight (green) and chosen (orange) outlines, then the masked film.

    Images come in manifest order (or `image_ids`); those without a readable image or mask are skipped.
    """
    if n < 1:
        raise LungpriorError(f"gallery size must be >= 1, got {n}")
    df = read_manifest(manifest, labels=False)
    masks_dir = resolve_masks_dir(seg_dir, "--seg")
    ids = [str(i) for i in df["image_id"]]
    if image_ids is not None:
        unknown = [i for i in image_ids if i not in set(ids)]
        if unknown:
            raise LungpriorError(f"{manifest}: image id(s) not in the manifest: {', '.join(unknown[:5])}")
        ids = list(image_ids)
    by_id = df.set_index(df["image_id"].astype(str))
    panels, skipped = [], []
    for image_id in ids:
        if len(panels) == n:
            break
        try:
            panels.append((image_id, _panel_data(df, by_id.loc[image_id], masks_dir, spec)))
        except LungpriorError as exc:
            skipped.append((image_id, str(exc)))
    if not panels:
        reason = skipped[0][1] if skipped else "the manifest is empty"
        raise LungpriorError(f"{seg_dir}: no image with a usable mask to show ({reason})")
    _draw(panels, spec, Path(out_png), per_row, dpi)
    return GalleryResult(Path(out_png), [i for i, _ in panels], skipped)


def _draw(panels: list, spec: MaskSpec, out: Path, per_row: int, dpi: int) -> None:
    cols = 2 * min(per_row, len(panels))
    rows = int(np.ceil(len(panels) / (cols // 2)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (image_id, (image, tight, weight, masked, label)) in enumerate(panels):
        left, right = axes.flat[2 * k], axes.flat[2 * k + 1]
        left.imshow(image, cmap="gray", vmin=0, vmax=1)
        left.contour(tight, levels=[0.5], colors=TIGHT_COLOR, linewidths=0.9)
        if spec.mode == "loose":
            left.contour(weight >= 0.5, levels=[0.5], colors=CHOSEN_COLOR, linewidths=0.9)
        elif spec.mode == "soft":  # where the weight is halfway between alpha and 1
            left.contour(weight, levels=[(1.0 + spec.alpha) / 2.0], colors=CHOSEN_COLOR, linewidths=0.9)
        left.set_title(image_id, fontsize=7)
        right.imshow(masked, cmap="gray", vmin=0, vmax=1)
        right.set_title(label, fontsize=7)
    handles = [plt.Line2D([], [], color=TIGHT_COLOR, label="tight")]
    if spec.mode != "tight":
        handles.append(plt.Line2D([], [], color=CHOSEN_COLOR, label=spec.key()))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
