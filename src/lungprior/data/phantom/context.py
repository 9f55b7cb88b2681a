"""Where each finding's signal lies: the share outside the tight lung outline, and how far outside.

Measured from the rendered lesions of a planned benchmark (no files written): for every positive film the
lesion's density (its signal, the image contrast it adds before exposure) and its extent (the lesion mask
written to `lesions/`) are compared with the film's ground-truth lungs. The shares answer "what does a tight
mask remove, and what does a loose mask of r mm give back?". An enlarged heart (with Edema) changes anatomy,
not lesion density, so it is not counted here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import distance_transform_edt

from lungprior.data.phantom.config import PhantomConfig
from lungprior.data.phantom.findings import render_lesion
from lungprior.data.phantom.plan import plan_benchmark
from lungprior.data.phantom.render import lung_labels
from lungprior.labels import FINDINGS

RADII_MM: tuple[float, ...] = (5.0, 10.0, 20.0)


def context_shares(cfg: PhantomConfig, *, max_films: int = 40, radii_mm: tuple[float, ...] = RADII_MM) -> pd.DataFrame:
    """Per finding: films measured, share of signal and of extent outside the tight lungs, and within r mm.

    Columns: `finding`, `films`, `signal_outside`, `signal_outside_within_<r>mm` (outside the lungs but within
    r mm of them, i.e. what a loose mask of radius r keeps back), `extent_outside`. Up to `max_films` positive
    films per finding, in plan order.
    """
    sums = {k: {"films": 0, "signal": 0.0, "outside": 0.0, "extent": 0.0, "extent_out": 0.0,
                **{r: 0.0 for r in radii_mm}} for k in FINDINGS}
    for plan in plan_benchmark(cfg):
        todo = [les for les in plan.lesions if sums[les.kind]["films"] < max_films]
        if not todo:
            if all(v["films"] >= max_films for v in sums.values()):
                break
            continue
        anatomy, frame, lungs = lung_labels(plan, cfg.size)
        inside = lungs > 0
        # within r mm of the lungs: what a loose mask of radius r keeps (the Euclidean disk `masks.dilate` uses)
        distance = distance_transform_edt(~inside) if inside.any() else np.full(inside.shape, np.inf)
        rings = {r: (distance <= r / cfg.pixel_spacing_mm) & ~inside for r in radii_mm}
        for les in todo:
            density, extent = render_lesion(les, anatomy, frame, lungs)
            signal = np.abs(density)
            acc = sums[les.kind]
            acc["films"] += 1
            acc["signal"] += float(signal.sum())
            acc["outside"] += float(signal[~inside].sum())
            acc["extent"] += float(extent.sum())
            acc["extent_out"] += float((extent & ~inside).sum())
            for r, ring in rings.items():
                acc[r] += float(signal[ring].sum())
    rows = []
    for k, acc in sums.items():
        total = acc["signal"] or float("nan")
        rows.append({"finding": k, "films": acc["films"], "signal_outside": acc["outside"] / total,
                     **{f"signal_outside_within_{r:g}mm": acc[r] / total for r in radii_mm},
                     "extent_outside": acc["extent_out"] / (acc["extent"] or float("nan"))})
    return pd.DataFrame(rows)
