"""Agreement of two sets of lung masks of the same films (e.g. MedSAM vs CheXmask): Dice, IoU, area ratio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.data.io import read_mask
from lungprior.data.manifest import read_manifest
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.experiment.segquality import dice
from lungprior.segment.infer.paths import mask_path_for

COLUMNS: tuple[str, ...] = ("image_id", "split", "dice", "iou", "area_a", "area_b", "status")


def compare_masks(
    manifest: str | os.PathLike[str], masks_a: str | os.PathLike[str], masks_b: str | os.PathLike[str]
) -> tuple[pd.DataFrame, dict]:
    """Per film: Dice, IoU and lung area fractions of A and B (films missing in either are listed, not scored).

    Masks of different sizes are compared at A's size (B resized, nearest neighbour). The summary gives per
    split and overall the number compared, mean / median / 5th percentile Dice and mean IoU.
    """
    df = read_manifest(manifest, labels=False)
    rows = []
    for image_id, split in zip(df["image_id"].astype(str), df["split"].astype(str), strict=True):
        try:
            a = read_mask(mask_path_for(masks_a, image_id))
            b = read_mask(mask_path_for(masks_b, image_id))
        except ImageReadError as exc:
            rows.append({"image_id": image_id, "split": split, "status": f"missing or unreadable: {exc.reason}"})
            continue
        if b.shape != a.shape:
            from PIL import Image

            im = Image.fromarray(b.astype(np.uint8) * 255).resize((a.shape[1], a.shape[0]), Image.Resampling.NEAREST)
            b = np.asarray(im) > 127
        d = dice(a, b)
        rows.append({"image_id": image_id, "split": split, "dice": d, "iou": d / (2.0 - d),
                     "area_a": float(a.mean()), "area_b": float(b.mean()), "status": "ok"})
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    scored = table[table["status"] == "ok"]
    if scored.empty:
        raise LungpriorError(f"no film of {manifest} has a mask in both {masks_a} and {masks_b}")
    summary = {"n_films": len(table), "n_compared": len(scored), "all": _summary(scored), "splits": {}}
    for split, part in scored.groupby("split"):
        summary["splits"][str(split)] = _summary(part)
    return table, summary


def _summary(part: pd.DataFrame) -> dict:
    return {"n": len(part), "dice_mean": float(part["dice"].mean()), "dice_median": float(part["dice"].median()),
            "dice_p05": float(part["dice"].quantile(0.05)), "iou_mean": float(part["iou"].mean()),
            "area_ratio_mean": float((part["area_b"] / part["area_a"].where(part["area_a"] > 0)).mean())}


def write_comparison(table: pd.DataFrame, summary: dict, out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """`OUT.csv` (per film) and `OUT.json` (summary)."""
    from lungprior.data.atomic import atomic_open, write_json

    base = Path(out)
    base.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = base.with_suffix(".csv"), base.with_suffix(".json")
    with atomic_open(csv_path, "w", encoding="utf-8", newline="") as fh:
        table.to_csv(fh, index=False)
    write_json(json_path, summary)
    return csv_path, json_path
