"""A labelled grid of benchmark films with lung and lesion outlines."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lungprior.data.atomic import atomic_path
from lungprior.labels import FINDINGS
from lungprior.plotting import plt

FINDING_COLORS = {"Mass": "#ff3b30", "Nodule": "#ffcc00", "Pneumonia": "#ff9500", "Edema": "#af52de",
                  "Fibrosis": "#00c7be"}


def pick_examples(manifest: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """Image ids covering each finding and No Finding first, then random others."""
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for label in (*FINDINGS, "No Finding"):
        pool = manifest.loc[(manifest[label] == 1) & ~manifest["image_id"].isin(chosen), "image_id"].tolist()
        if pool and len(chosen) < n:
            chosen.append(pool[int(rng.integers(len(pool)))])
    rest = manifest.loc[~manifest["image_id"].isin(chosen), "image_id"].tolist()
    rng.shuffle(rest)
    return chosen + rest[: max(0, n - len(chosen))]


def write_gallery(bench_dir: str | os.PathLike[str], out_png: str | os.PathLike[str], n: int = 12,
                  seed: int = 0, image_ids: list[str] | None = None, cols: int = 4, dpi: int = 100) -> Path:
    """Write a grid of films from a generated benchmark with lung (green) and lesion outlines and labels."""
    root = Path(bench_dir)
    manifest = pd.read_csv(root / "manifest.csv", dtype={"image_id": str})
    markers_path = root / "markers.csv"
    markers = pd.read_csv(markers_path).set_index("image_id") if markers_path.is_file() else None
    ids = image_ids or pick_examples(manifest, n, seed)
    rows = int(np.ceil(len(ids) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False)
    by_id = manifest.set_index("image_id")
    for ax, image_id in zip(axes.flat, ids, strict=False):
        row = by_id.loc[image_id]
        img = np.asarray(Image.open(root / row["path"]))
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        lungs = np.asarray(Image.open(root / "masks" / f"{image_id}.png"))
        ax.contour(lungs >= 128, levels=[0.5], colors="#34c759", linewidths=0.8)
        lesions = np.asarray(Image.open(root / "lesions" / f"{image_id}.png"))
        for k, name in enumerate(FINDINGS):
            bit = (lesions >> k) & 1
            if bit.any():
                ax.contour(bit, levels=[0.5], colors=FINDING_COLORS[name], linewidths=0.9)
        found = [k for k in FINDINGS if row[k] == 1] or ["No Finding"]
        title = ", ".join(found)
        if markers is not None:
            m = [k for k in FINDINGS if markers.loc[image_id, f"marker_{k}"] == 1]
            if m:
                title += "\nmarkers: " + ", ".join(m)
        ax.set_title(f"{image_id} ({row['split']})\n{title}", fontsize=7)
        ax.axis("off")
    for ax in list(axes.flat)[len(ids):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, label=k) for k, c in FINDING_COLORS.items()]
    handles.append(plt.Line2D([], [], color="#34c759", label="lungs (ground truth)"))
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = Path(out_png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return out
