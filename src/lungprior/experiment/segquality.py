"""Segmentation quality against ground-truth lung masks (the synthetic benchmark's), per split."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from lungprior.data.io import read_mask
from lungprior.data.manifest import read_manifest
from lungprior.errors import LungpriorError
from lungprior.layout import mask_path_for
from lungprior.segment.overlap import dice, iou


def flagged_count(qc: pd.DataFrame) -> int:
    """Masks the QC flagged: every row whose `flag` is not `ok` (`empty`, `implausible`, or missing)."""
    if "flag" not in qc.columns:
        return 0
    return int(qc["flag"].fillna("").astype(str).str.strip().ne("ok").sum())


def segmentation_quality(
    manifest: str | os.PathLike[str], pred_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str]
) -> dict:
    """Dice and IoU of every predicted mask vs its ground truth; summary per split and a per-image table."""
    df = read_manifest(manifest)
    rows = []
    for image_id, split in zip(df["image_id"], df["split"], strict=True):
        try:
            gt = read_mask(mask_path_for(gt_dir, image_id))
            pred = read_mask(mask_path_for(pred_dir, image_id), shape=gt.shape)
        except LungpriorError:
            continue  # missing predictions are counted below
        d = dice(pred, gt)
        rows.append({"image_id": image_id, "split": split, "dice": d, "iou": iou(pred, gt)})
    table = pd.DataFrame(rows, columns=["image_id", "split", "dice", "iou"])
    table.to_csv(Path(pred_dir).parent / "dice.csv", index=False)
    out: dict = {"n_images": len(df), "n_scored": len(table), "splits": {}}
    for split, part in table.groupby("split"):
        out["splits"][str(split)] = {
            "n": len(part),
            "dice_mean": float(part["dice"].mean()),
            "dice_median": float(part["dice"].median()),
            "dice_p05": float(part["dice"].quantile(0.05)),
            "iou_mean": float(part["iou"].mean()),
        }
    return out
