"""`evaluate_segmentations`: predicted lung masks against ground truth, per film and in summary.

Per film: Dice, IoU, HD95 and mean (symmetric) surface distance of the whole lung mask (MONAI metrics), and
the Dice of each lung (the patient's right lung is the image's left on a PA film: both masks are cut at the
column midway between the ground truth's two lungs). Distances are in mm when the manifest gives the
pixel spacing, else in pixels of the film scaled to 1024 px on its long side ("px@1024"), so films of any
size are comparable. Pixels that the ground truth marks "ignore" (grey 127) count neither way. An empty
prediction scores the image diagonal as its distances. The QC flag of each film (the run's `qc.csv`) is
kept beside its numbers, so one can see whether QC flags the bad films. A ground truth that is ignore
everywhere is not scored (listed in `not_scored`), and an image id listed twice is scored once.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage as ndi

from lungprior.data.atomic import write_json
from lungprior.data.ignore import drop_ignored, read_mask_ignore
from lungprior.data.io import read_image, read_mask, write_png
from lungprior.data.manifest import read_csv, resolve
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.layout import QC_FILE, mask_name, resolve_masks_dir
from lungprior.segment.overlap import dice, iou

PathLike = str | os.PathLike[str]
REFERENCE_SIDE = 1024  # distances without a known spacing are in pixels at this long side
FILM_COLUMNS: tuple[str, ...] = (
    "image_id", "view", "dice", "iou", "hd95", "msd", "dice_right", "dice_left", "unit", "qc_flag", "qc_reason",
)
_EIGHT = np.ones((3, 3), dtype=bool)


def film_metrics(
    pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None, spacing_mm: float | None = None
) -> dict[str, Any]:
    """Dice, IoU, HD95, mean surface distance and per-lung Dice of one film (see the module docstring)."""
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape or p.ndim != 2:
        raise LungpriorError(f"prediction {p.shape} and ground truth {t.shape} differ or are not 2-D")
    p, t = drop_ignored(p, t, ignore)
    known = spacing_mm is not None and math.isfinite(float(spacing_mm)) and float(spacing_mm) > 0
    step = float(spacing_mm) if known else REFERENCE_SIDE / max(p.shape)
    unit = "mm" if known else f"px@{REFERENCE_SIDE}"
    diagonal = math.hypot(*p.shape) * step
    cut = midline(t)
    right, left = np.zeros_like(t), np.zeros_like(t)
    right[:, :cut], left[:, cut:] = True, True
    row = {"dice": dice(p, t), "iou": iou(p, t), "unit": unit,
           "dice_right": dice(p & right, t & right), "dice_left": dice(p & left, t & left)}
    if not p.any() or not t.any():
        row.update(hd95=diagonal, msd=diagonal)
        return row
    pt, tt = torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row["hd95"] = float(compute_hausdorff_distance(pt, tt, include_background=True, percentile=95,
                                                       spacing=step).item())
        row["msd"] = float(compute_average_surface_distance(pt, tt, include_background=True, symmetric=True,
                                                            spacing=step).item())
    return row


def midline(truth: np.ndarray) -> int:
    """The column between the ground truth's two largest lungs (image middle when there are fewer than two)."""
    labels, count = ndi.label(truth, structure=_EIGHT)
    if count < 2:
        return truth.shape[1] // 2
    sizes = np.bincount(labels.ravel())[1:]
    a, b = (np.argsort(-sizes, kind="stable")[:2] + 1).tolist()
    cols_a, cols_b = np.nonzero((labels == a).any(axis=0))[0], np.nonzero((labels == b).any(axis=0))[0]
    first, second = (cols_a, cols_b) if cols_a.mean() < cols_b.mean() else (cols_b, cols_a)
    return round((first.max() + 1 + second.min()) / 2.0)


@dataclass
class SegevalResult:
    films: pd.DataFrame
    summary: dict[str, Any]
    out: Path


def summarise(films: pd.DataFrame, worst: int = 8) -> dict[str, Any]:
    """Mean, median, 10th percentile (Dice) / 90th (distances) and the worst films, overall and per view."""

    def stats(df: pd.DataFrame) -> dict[str, Any]:
        if df.empty:
            return {"n": 0}
        out: dict[str, Any] = {"n": len(df)}
        for k in ("dice", "iou", "dice_right", "dice_left"):
            v = df[k].to_numpy(float)
            out[k] = {"mean": float(v.mean()), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                      "min": float(v.min())}
        for k in ("hd95", "msd"):
            v = df[k].to_numpy(float)
            out[k] = {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.percentile(v, 90))}
        out["below_0.90"] = int((df["dice"] < 0.90).sum())
        out["below_0.80"] = int((df["dice"] < 0.80).sum())
        return out

    summary: dict[str, Any] = {"all": stats(films), "units": sorted(films["unit"].unique().tolist())}
    views = films["view"].fillna("").astype(str)
    summary["by_view"] = {v: stats(films[views == v]) for v in sorted(views.unique()) if v}
    order = films.sort_values("dice", kind="stable").head(worst)
    summary["worst"] = order[["image_id", "dice", "hd95", "qc_flag", "qc_reason"]].to_dict(orient="records")
    flagged = films["qc_flag"].fillna("").astype(str).isin(["", "ok"]) == False  # noqa: E712
    bad = films["dice"] < 0.85
    summary["qc"] = {
        "bad_films (dice<0.85)": int(bad.sum()),
        "bad_flagged": int((bad & flagged).sum()),
        "good_films": int((~bad).sum()),
        "good_flagged": int((~bad & flagged).sum()),
    }
    return summary


def evaluate_segmentations(
    manifest: PathLike, pred: PathLike, out: PathLike, *, gt: PathLike | None = None, worst: int = 8,
    gallery: bool = True,
) -> SegevalResult:
    """Score every film of `manifest` that has a predicted mask; writes films.csv, summary.json, worst.png.

    Ground truth: the manifest's `mask_path` (a segdata manifest) or `<gt>/<mask name>.png`. Predictions:
    `<pred>/masks/<mask name>.png` (a `lungprior segment` run) or `<pred>/<mask name>.png`.
    """
    df = read_csv(manifest)
    df.attrs["root"] = str(Path(manifest).resolve().parent)
    for column in ("image_id", "path"):
        if column not in df.columns:
            raise LungpriorError(f"{manifest}: manifest has no {column!r} column")
    if gt is None and "mask_path" not in df.columns:
        raise LungpriorError(f"{manifest}: no mask_path column; give --gt with the ground-truth masks")
    pred_dir = Path(pred)
    masks_dir = resolve_masks_dir(pred_dir, "--pred")
    if worst < 0:
        raise LungpriorError(f"--worst must be 0 or more, got {worst}")
    qc = _qc_table(pred_dir)
    rows, missing = [], []
    scored: set[str] = set()
    spacing = pd.to_numeric(df.get("pixel_spacing_mm", pd.Series(np.nan, index=df.index)), errors="coerce")
    for i, r in df.iterrows():
        image_id = str(r["image_id"])
        if mask_name(image_id) in scored:  # a repeated id (or one sharing its mask file) counts once
            missing.append({"image_id": image_id, "reason": "listed more than once in the manifest: scored once"})
            continue
        p_path = masks_dir / mask_name(image_id)
        t_path = Path(gt) / mask_name(image_id) if gt is not None else resolve(df, str(r["mask_path"]))
        if not p_path.is_file():
            missing.append({"image_id": image_id, "reason": f"no predicted mask {p_path.name}"})
            continue
        try:
            truth, ignore = read_mask_ignore(t_path)
            predicted = read_mask(p_path, shape=truth.shape)
        except (ImageReadError, LungpriorError) as exc:
            missing.append({"image_id": image_id, "reason": str(exc)})
            continue
        if ignore.all():
            missing.append({"image_id": image_id, "reason": f"{t_path.name}: every pixel is ignore (127), "
                            "nothing to score"})
            continue
        scored.add(mask_name(image_id))
        s = spacing[i]
        metrics = film_metrics(predicted, truth, ignore if ignore.any() else None,
                               None if not np.isfinite(s) else float(s))
        flag, reason = qc.get(image_id, ("", ""))
        view = str(r["view"]) if "view" in df.columns and not pd.isna(r["view"]) else ""
        rows.append({"image_id": image_id, "view": view, **metrics, "qc_flag": flag, "qc_reason": reason})
    if not rows:
        first = f" (first: {missing[0]['image_id']}: {missing[0]['reason']})" if missing else ""
        raise LungpriorError(f"no film could be scored{first}")
    films = pd.DataFrame(rows, columns=list(FILM_COLUMNS))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    films.to_csv(out_dir / "films.csv", index=False, float_format="%.6f")
    summary = {"manifest": str(Path(manifest).resolve()), "pred": str(pred_dir.resolve()),
               **summarise(films, worst), "not_scored": missing}
    write_json(out_dir / "summary.json", summary)
    if gallery:
        worst_ids = films.sort_values("dice", kind="stable")["image_id"].head(worst).tolist()
        write_outline_gallery(df, worst_ids, masks_dir, out_dir / "worst.png", gt=gt, scores=films)
    return SegevalResult(films, summary, out_dir)


def _qc_table(pred_dir: Path) -> dict[str, tuple[str, str]]:
    path = pred_dir / QC_FILE
    if not path.is_file():
        return {}
    qc = read_csv(path)
    if "image_id" not in qc.columns or "flag" not in qc.columns:
        return {}
    reasons = qc["reason"] if "reason" in qc.columns else pd.Series("", index=qc.index)
    return {str(i): (str(f), "" if pd.isna(r) else str(r))
            for i, f, r in zip(qc["image_id"], qc["flag"], reasons, strict=True)}


def outline_panel(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, side: int = 320) -> np.ndarray:
    """An RGB uint8 thumbnail: ground truth outlined in green, prediction in red."""
    h, w = image.shape
    r = side / max(h, w)
    size = (max(1, round(w * r)), max(1, round(h * r)))
    grey = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    panel = np.repeat(np.rint(np.clip(grey, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    for mask, colour in ((truth, (0, 220, 0)), (pred, (255, 40, 40))):
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(panel, contours, -1, colour, 1)
    return panel


def filled_panel(image: np.ndarray, pred: np.ndarray, side: int = 320) -> np.ndarray:
    """An RGB uint8 thumbnail with the predicted mask filled in red (half opacity): what the mask really covers."""
    h, w = image.shape
    r = side / max(h, w)
    size = (max(1, round(w * r)), max(1, round(h * r)))
    grey = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    panel = np.repeat(np.rint(np.clip(grey, 0, 1) * 255).astype(np.float32)[..., None], 3, axis=2)
    small = cv2.resize(pred.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    panel[small] = 0.5 * panel[small] + 0.5 * np.array([255.0, 40.0, 40.0])
    return np.rint(panel).astype(np.uint8)


def write_outline_gallery(
    df: pd.DataFrame, image_ids: list[str], masks_dir: Path, path: Path, *, gt: PathLike | None,
    scores: pd.DataFrame, side: int = 320, per_row: int = 2,
) -> Path | None:
    """A PNG grid of films (the worst of an evaluation), each twice: both outlines (truth green, prediction red)
    and, beside it, the prediction filled, so a sliver or a hole shows as what it is; with the Dice below."""
    by_id = df.set_index(df["image_id"].astype(str))
    dice_of = dict(zip(scores["image_id"], scores["dice"], strict=True))
    panels = []
    for image_id in image_ids:
        row = by_id.loc[image_id]
        try:
            image, _ = read_image(resolve(df, str(row["path"])))
            t_path = Path(gt) / mask_name(image_id) if gt is not None else resolve(df, str(row["mask_path"]))
            truth = read_mask(t_path)
            pred = read_mask(masks_dir / mask_name(image_id), shape=truth.shape)
        except (ImageReadError, LungpriorError):
            continue
        if image.shape != truth.shape:
            image = cv2.resize(image, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_AREA)
        tile = np.zeros((side + 18, 2 * side + 4, 3), np.uint8)
        panel = outline_panel(image, truth, pred, side)
        tile[: panel.shape[0], : panel.shape[1]] = panel
        filled = filled_panel(image, pred, side)
        tile[: filled.shape[0], side + 4 : side + 4 + filled.shape[1]] = filled
        label = f"{image_id[:30]} Dice {dice_of[image_id]:.3f}"
        cv2.putText(tile, label, (3, side + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(tile)
    if not panels:
        return None
    rows = [panels[i : i + per_row] for i in range(0, len(panels), per_row)]
    blank = np.zeros_like(panels[0])
    grid = np.concatenate([np.concatenate(r + [blank] * (per_row - len(r)), axis=1) for r in rows], axis=0)
    write_png(path, grid)
    return path
