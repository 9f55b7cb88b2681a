"""Quality control of a lung segmentation: area, components, balance of the two sides, confidence, flags."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

QC_COLUMNS: tuple[str, ...] = (
    "image_id", "area_fraction", "n_components", "lr_area_ratio", "mean_prob", "prompt_source", "flag", "reason",
)
#: Plausible lung area as a fraction of the image (an adult PA film), and the smallest side-to-side ratio.
AREA_RANGE: tuple[float, float] = (0.08, 0.65)
MIN_LR_RATIO = 0.25
MAX_COMPONENTS = 2
#: Components smaller than this fraction of the image (specks, fragments; a lung covers 5 % or more) are not
#: counted; the tight mask drops them anyway.
MIN_COMPONENT_FRACTION = 0.01
_EIGHT = np.ones((3, 3), dtype=bool)


def qc_row(image_id: str, mask: np.ndarray, prob: np.ndarray, prompt_source: str) -> dict[str, object]:
    """One qc.csv row.

    - area_fraction: lung pixels / image pixels;
    - n_components: 8-connected components of at least 1 % of the image;
    - lr_area_ratio: smaller / larger of the lung areas on the two sides of the vertical midline (each
      component counted on the side of its centroid; 1 = balanced, 0 = one side empty);
    - mean_prob: mean probability inside the mask;
    - flag: ok | empty | implausible, with the reasons in `reason`.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    area = int(mask.sum())
    row: dict[str, object] = {"image_id": image_id, "prompt_source": prompt_source}
    if area == 0:
        row.update(area_fraction=0.0, n_components=0, lr_area_ratio=0.0, mean_prob=float("nan"), flag="empty",
                   reason="no lung pixels")
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
    row.update(
        area_fraction=fraction, n_components=n_components, lr_area_ratio=ratio,
        mean_prob=float(np.asarray(prob, dtype=np.float64)[mask].mean()),
        flag="implausible" if reasons else "ok", reason="; ".join(reasons),
    )
    return row
