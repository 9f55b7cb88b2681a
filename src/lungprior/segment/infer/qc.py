"""Quality control of a lung segmentation: area, components, balance of the two sides, confidence, flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

QC_COLUMNS: tuple[str, ...] = (
    "image_id", "area_fraction", "n_components", "lr_area_ratio", "mean_prob", "box_fill", "border_touch",
    "stability", "pred_iou", "prompt_source", "flag", "reason",
)


@dataclass(frozen=True)
class QcThresholds:
    """Every QC threshold, in one place (docs/segmentation.md, "Quality control", shows this table).

    Calibrated on real films: the side ratio, box fill, area, border and component limits accept every human
    lung mask of 493 real films (58 radiologist masks, 435 V7 masks of the same public collection; lowest side
    ratio 0.61) with room for a child's or a cardiomegalic heart; the confidence limits (mean probability,
    stability) and the film size come from the zero-shot real-film cross-validation; the predicted-IoU limit is
    the IoU of Dice 0.85 (not fitted).
    """

    min_area: float = 0.08  # lung pixels / film pixels ...
    max_area: float = 0.65  # ... within these
    min_lr_ratio: float = 0.5  # the smaller side's lung area / the larger side's
    max_components: int = 2  # components of at least `min_component_fraction` of the film
    min_component_fraction: float = 0.01  # specks and fragments below this are not counted
    min_box_fill: float = 0.4  # the smaller lung's area / its bounding box
    max_border_touch: float = 0.25  # share of the film's outer frame covered by lung
    min_mean_prob: float = 0.92  # mean probability inside the mask
    min_stability: float = 0.965  # Dice of the mask with a re-decode from boxes around it
    min_pred_iou: float = 0.74  # the model's own IoU estimate (its IoU head) for its worst lung mask
    min_film_side: int = 192  # films with a shorter side (pixels) are flagged: the segmenter is unreliable there


QC = QcThresholds()
#: Check name -> the start of its reason text (`failed_checks` counts flagged films per check).
QC_CHECKS: dict[str, str] = {
    "empty": "no lung pixels", "blank": "blank image", "small film": "film of", "area": "area fraction",
    "side ratio": "one side", "components": "components", "box fill": "a lung fills", "border": "lung covers",
    "probability": "mean probability", "stability": "re-decoding agrees", "predicted IoU": "predicted IoU",
}
_EIGHT = np.ones((3, 3), dtype=bool)


def box_fill(labels: np.ndarray, sizes: np.ndarray) -> float:
    """The smaller, over the two largest components, of component area / its bounding-box area."""
    fills = []
    for k in np.argsort(-sizes)[:2] + 1:
        rows, cols = np.nonzero(labels == k)
        fills.append(len(rows) / float((rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)))
    return float(min(fills))


def border_touch(mask: np.ndarray) -> float:
    """Fraction of the image's outer frame (0.5 % of the long side, at least 2 px wide) covered by the mask."""
    h, w = mask.shape
    band = max(2, round(0.005 * max(h, w)))
    frame = np.zeros_like(mask)
    frame[:band], frame[-band:], frame[:, :band], frame[:, -band:] = True, True, True, True
    return float((mask & frame).sum()) / float(frame.sum())


def qc_row(
    image_id: str, mask: np.ndarray, prob: np.ndarray, prompt_source: str, stability: float = float("nan"),
    pred_iou: float = float("nan"),
) -> dict[str, object]:
    """One qc.csv row.

    - area_fraction: lung pixels / image pixels;
    - n_components: 8-connected components of at least 1 % of the image;
    - lr_area_ratio: smaller / larger of the lung areas on the two sides of the vertical midline (each
      component counted on the side of its centroid; 1 = balanced, 0 = one side empty);
    - mean_prob: mean probability inside the mask;
    - box_fill: the smaller lung's area / its bounding box (a lung cut short by an opacity fills little of it);
    - border_touch: fraction of the image's outer frame covered by lung (a leak into the film's edge);
    - stability: Dice between the final mask and a re-decode from boxes around it (the cascade's own agreement);
    - pred_iou: the lowest IoU the model's IoU head predicts for the masks of the final prompts;
    - flag: ok | empty | implausible, with the reasons in `reason`.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    area = int(mask.sum())
    row: dict[str, object] = {"image_id": image_id, "prompt_source": prompt_source, "pred_iou": pred_iou}
    if area == 0:
        row.update(area_fraction=0.0, n_components=0, lr_area_ratio=0.0, mean_prob=float("nan"), box_fill=0.0,
                   border_touch=0.0, stability=stability, flag="empty", reason="no lung pixels")
        return row
    labels, count = ndi.label(mask, structure=_EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    centroids_x = np.array([c[1] for c in ndi.center_of_mass(mask, labels, np.arange(1, count + 1))])
    right = float(sizes[centroids_x < w / 2.0].sum())
    left = float(sizes[centroids_x >= w / 2.0].sum())
    fraction = area / float(h * w)
    n_components = int((sizes >= QC.min_component_fraction * h * w).sum())
    ratio = min(right, left) / max(right, left)
    row.update(
        area_fraction=fraction, n_components=n_components, lr_area_ratio=ratio,
        mean_prob=float(np.asarray(prob, dtype=np.float64)[mask].mean()), box_fill=box_fill(labels, sizes),
        border_touch=border_touch(mask), stability=stability,
    )
    reasons = feature_reasons(row)
    row.update(flag="implausible" if reasons else "ok", reason="; ".join(reasons))
    return row


def feature_reasons(row: dict[str, object]) -> list[str]:
    """Every threshold (`QC`) a non-empty mask's QC features (a qc.csv row's numbers) break, as reason texts."""
    f = {k: float(row[k]) if row.get(k) not in (None, "") else float("nan") for k in (
        "area_fraction", "lr_area_ratio", "n_components", "box_fill", "border_touch", "mean_prob", "stability",
        "pred_iou")}
    reasons = []
    if not QC.min_area <= f["area_fraction"] <= QC.max_area:
        reasons.append(f"area fraction {f['area_fraction']:.3f} outside [{QC.min_area}, {QC.max_area}]")
    if f["lr_area_ratio"] < QC.min_lr_ratio:
        reasons.append(f"one side {f['lr_area_ratio']:.2f} x the other (< {QC.min_lr_ratio})")
    if f["n_components"] > QC.max_components:
        reasons.append(f"{int(f['n_components'])} components (> {QC.max_components})")
    if f["box_fill"] < QC.min_box_fill:
        reasons.append(f"a lung fills {f['box_fill']:.2f} of its box (< {QC.min_box_fill})")
    if f["border_touch"] > QC.max_border_touch:
        reasons.append(f"lung covers {f['border_touch']:.2f} of the image border (> {QC.max_border_touch})")
    if f["mean_prob"] < QC.min_mean_prob:
        reasons.append(f"mean probability {f['mean_prob']:.3f} (< {QC.min_mean_prob})")
    if np.isfinite(f["stability"]) and f["stability"] < QC.min_stability:
        reasons.append(f"re-decoding agrees at Dice {f['stability']:.3f} (< {QC.min_stability})")
    if np.isfinite(f["pred_iou"]) and f["pred_iou"] < QC.min_pred_iou:
        reasons.append(f"predicted IoU {f['pred_iou']:.3f} (< {QC.min_pred_iou})")
    return reasons


def with_film_size(row: dict[str, object], shape: tuple[int, int]) -> dict[str, object]:
    """The row, flagged when the film's shorter side is below `QC.min_film_side` (the segmenter's reliable size)."""
    h, w = shape
    if min(h, w) >= QC.min_film_side or row["flag"] == "empty":
        return row
    reason = f"film of {h}x{w} pixels (< {QC.min_film_side}: the segmenter is unreliable there)"
    return {**row, "flag": "implausible", "reason": "; ".join(r for r in (reason, row["reason"]) if r)}


def failed_checks(reason: str) -> list[str]:
    """The names (`QC_CHECKS`) of the checks a QC row's `reason` reports."""
    parts = [p for p in str(reason).split("; ") if p]
    return [name for p in parts for name, start in QC_CHECKS.items() if start in p.split(" (")[0]]


def flag_counts(rows: list[dict[str, object]]) -> dict[str, int]:
    """Flagged films per check over QC rows (a film failing two checks counts under both)."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("flag") != "ok":
            for name in dict.fromkeys(failed_checks(str(row.get("reason") or ""))) or ["other"]:
                counts[name] = counts.get(name, 0) + 1
    return counts
