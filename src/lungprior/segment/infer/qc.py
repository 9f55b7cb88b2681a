"""Quality control of a lung segmentation: area, components, balance of the two sides, confidence, flags."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

QC_COLUMNS: tuple[str, ...] = (
    "image_id", "area_fraction", "n_components", "lr_area_ratio", "mean_prob", "box_fill", "border_touch",
    "stability", "prompt_source", "flag", "reason",
)
#: Plausible lung area as a fraction of the image (an adult PA film), and the smallest side-to-side ratio.
AREA_RANGE: tuple[float, float] = (0.08, 0.65)
MIN_LR_RATIO = 0.7
MAX_COMPONENTS = 2
#: Components smaller than this fraction of the image (specks, fragments; a lung covers 5 % or more) are not
#: counted; the tight mask drops them anyway.
MIN_COMPONENT_FRACTION = 0.01
#: Real-film checks (see docs/segmentation.md, "Quality control").
MIN_BOX_FILL = 0.4
MAX_BORDER_TOUCH = 0.25
MIN_MEAN_PROB = 0.90
MIN_STABILITY = 0.96
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
    image_id: str, mask: np.ndarray, prob: np.ndarray, prompt_source: str, stability: float = float("nan")
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
    - flag: ok | empty | implausible, with the reasons in `reason`.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    area = int(mask.sum())
    row: dict[str, object] = {"image_id": image_id, "prompt_source": prompt_source}
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
    n_components = int((sizes >= MIN_COMPONENT_FRACTION * h * w).sum())
    ratio = min(right, left) / max(right, left)
    reasons = []
    if not AREA_RANGE[0] <= fraction <= AREA_RANGE[1]:
        reasons.append(f"area fraction {fraction:.3f} outside [{AREA_RANGE[0]}, {AREA_RANGE[1]}]")
    if ratio < MIN_LR_RATIO:
        reasons.append(f"one side {ratio:.2f} x the other (< {MIN_LR_RATIO})")
    if n_components > MAX_COMPONENTS:
        reasons.append(f"{n_components} components (> {MAX_COMPONENTS})")
    fill = box_fill(labels, sizes)
    touch = border_touch(mask)
    mean_prob = float(np.asarray(prob, dtype=np.float64)[mask].mean())
    reasons.extend(_real_film_reasons(fill, touch, mean_prob, stability))
    row.update(
        area_fraction=fraction, n_components=n_components, lr_area_ratio=ratio, mean_prob=mean_prob,
        box_fill=fill, border_touch=touch, stability=stability,
        flag="implausible" if reasons else "ok", reason="; ".join(reasons),
    )
    return row


def _real_film_reasons(fill: float, touch: float, mean_prob: float, stability: float) -> list[str]:
    """Flags calibrated on real films (docs/segmentation.md, "Quality control")."""
    reasons = []
    if fill < MIN_BOX_FILL:
        reasons.append(f"a lung fills {fill:.2f} of its box (< {MIN_BOX_FILL})")
    if touch > MAX_BORDER_TOUCH:
        reasons.append(f"lung covers {touch:.2f} of the image border (> {MAX_BORDER_TOUCH})")
    if mean_prob < MIN_MEAN_PROB:
        reasons.append(f"mean probability {mean_prob:.2f} (< {MIN_MEAN_PROB})")
    if np.isfinite(stability) and stability < MIN_STABILITY:
        reasons.append(f"re-decoding agrees at Dice {stability:.2f} (< {MIN_STABILITY})")
    return reasons
