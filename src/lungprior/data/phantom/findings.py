"""The five findings of the synthetic benchmark, each drawn where it sits radiographically.

- Nodule: a small round opacity inside a lung.
- Mass: a larger lobulated opacity, a third of them at the hilum (straddling the medial lung border).
- Pneumonia: patchy lobar consolidation confined to one lung zone.
- Edema: bilateral perihilar haze that spills over the medial lung borders (so part of it lies outside
  the tight lung outline), with Kerley lines at the bases and, often, an enlarged heart.
- Fibrosis: a reticular pattern along the pleura, heaviest at the bases.

A `Lesion` is sampled once per patient in normalised coordinates and rendered into each of the patient's
films, so follow-up images show the same lesion under different acquisitions.

The outside-context dial `context` c in [0, 1] (0: the findings above, unchanged) moves the evidence of Edema,
Mass and Pneumonia from inside the tight lung outline to just outside it, as on real films: their in-lung
signal is multiplied by (1 - c) (none left at c = 1), and outside the lungs
- Edema: the perihilar haze over the hila and mediastinum strengthens and widens, and pleural effusions blunt
  the costophrenic angles below the lung outline (an enlarged heart stays as frequent as at c = 0: it shows in
  the lung outline itself, so every prior sees it);
- Mass: more of them hilar (35 % -> 100 %), centred nearer the mediastinum, the part over the hilum and
  mediastinum denser (x (1 + c));
- Pneumonia: placed nearer the heart, with a silhouette sign (opacity along the heart border, 5 c x the
  lesion's amplitude).
Nodule and Fibrosis are unchanged (purely intrapulmonary controls).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from lungprior.data.phantom.anatomy import LEFT, RIGHT, Anatomy, _heart_field, render_lungs
from lungprior.data.phantom.geometry import Frame, draw_polylines
from lungprior.labels import FINDINGS

CARDIOMEGALY_WITH_EDEMA = 0.6  # probability that an edema patient also has an enlarged heart


@dataclass(frozen=True)
class Lesion:
    """One finding's geometry and strength, in normalised body coordinates."""

    kind: str
    center: tuple[float, float]
    radius: float
    amplitude: float
    seed: int
    heart_scale: float = 1.0
    side: int = 0
    context: float = 0.0


def sample_lesion(kind: str, a: Anatomy, rng: np.random.Generator, context: float = 0.0) -> Lesion:
    """Draw the geometry of one finding for patient anatomy `a`, with outside-lung context `context`."""
    if kind not in FINDINGS:
        raise ValueError(f"unknown finding {kind!r}")
    les = _sample(kind, a, rng, context)
    return replace(les, context=float(context)) if context else les


def _sample(kind: str, a: Anatomy, rng: np.random.Generator, c: float) -> Lesion:
    seed = int(rng.integers(2**31))
    if kind == "Nodule":
        return Lesion(
            kind, _point_in_lung(a, rng, margin=0.05), rng.uniform(0.028, 0.05), rng.uniform(0.10, 0.28), seed
        )
    if kind == "Mass":
        r = rng.uniform(0.07, 0.12)
        if rng.random() < 0.35 + 0.65 * c:
            hx, hy = a.hila()[int(rng.integers(2))]
            center = (hx * (1.0 - 0.5 * c) + rng.normal(0, 0.02), hy + rng.normal(0, 0.04))
        else:
            center = _point_in_lung(a, rng, margin=0.08)
        return Lesion(kind, center, r, rng.uniform(0.16, 0.34), seed)
    if kind == "Pneumonia":
        side = RIGHT if rng.random() < 0.55 else LEFT
        zone = rng.choice([0.25, 0.55, 0.8], p=[0.15, 0.35, 0.5])  # upper / middle / lower zone
        y = a.lung_top + zone * (a.lung_base - a.lung_top)
        x = (-1 if side == RIGHT else 1) * rng.uniform(0.35, 0.6) * (1.0 - 0.35 * c)
        return Lesion(kind, (x, y), rng.uniform(0.17, 0.28), rng.uniform(0.18, 0.36), seed, side=side)
    if kind == "Edema":
        scale = rng.uniform(1.12, 1.3) if rng.random() < CARDIOMEGALY_WITH_EDEMA else 1.0
        return Lesion(kind, (0.0, a.hila()[0][1]), rng.uniform(0.22, 0.32), rng.uniform(0.14, 0.28), seed, scale)
    return Lesion(kind, (0.0, 0.0), rng.uniform(0.07, 0.11), rng.uniform(0.22, 0.38), seed)  # Fibrosis


def render_lesion(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density (float32) and extent (bool) of a lesion in `frame`; `lungs` are that frame's lung labels."""
    return _RENDERERS[les.kind](les, a, frame, lungs)


def _nodule(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = frame.grid
    d = np.hypot(x - les.center[0], y - les.center[1]) / les.radius
    density = les.amplitude * np.clip(1.0 - d**2, 0.0, None) ** 1.5
    return density.astype(np.float32), d < 0.85


def _mass(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = frame.grid
    rng = np.random.default_rng(les.seed)
    theta = np.arctan2(y - les.center[1], x - les.center[0])
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    r = les.radius * (1.0 + 0.14 * np.sin(3 * theta + p1) + 0.08 * np.sin(5 * theta + p2))
    d = np.hypot(x - les.center[0], y - les.center[1]) / r
    density = les.amplitude * np.clip(1.0 - d**2, 0.0, None) ** 0.8
    if les.context:
        density = _move_outside(density, lungs, les.context, frame)
        return density.astype(np.float32), (d < 0.9) & (density > 0.05 * les.amplitude)
    return density.astype(np.float32), d < 0.9


def _pneumonia(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = frame.grid
    unit = frame.px_per_unit()
    rng = np.random.default_rng(les.seed)
    noise = gaussian_filter(rng.standard_normal(x.shape).astype(np.float32), sigma=0.04 * unit, truncate=3.0)
    noise /= noise.std() + 1e-6
    env = np.exp(-(((x - les.center[0]) / les.radius) ** 2 + ((y - les.center[1]) / (0.8 * les.radius)) ** 2))
    patch = np.clip(env * (1.0 + 0.45 * noise) - 0.35, 0.0, None)
    lung = gaussian_filter((lungs == les.side).astype(np.float32), sigma=0.01 * unit, truncate=3.0)
    density = les.amplitude * np.clip(patch / 0.4, 0.0, 1.0) * lung
    extent = (density > 0.3 * les.amplitude) & (lungs == les.side)
    if les.context:
        density = density * (1.0 - les.context)
        extent &= density > 0.05 * les.amplitude
        # silhouette sign: the consolidation effaces the heart border on its side, outside the lungs
        heart = _heart_field(a, x, y)
        side = (x < a.heart_center[0]) if les.side == RIGHT else (x > a.heart_center[0])
        level = np.exp(-(((y - les.center[1]) / (1.2 * les.radius)) ** 2))
        border = 4.0 * heart * (1.0 - heart) * side * level * (lungs == 0)
        border = gaussian_filter(border.astype(np.float32), sigma=0.02 * unit, truncate=3.0) * (lungs == 0)
        density = density + 5.0 * les.context * les.amplitude * border
        extent |= border > 0.3
    return density.astype(np.float32), extent


def _edema(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = frame.grid
    unit = frame.px_per_unit()
    haze = np.zeros_like(x)
    for hx, hy in a.hila():
        haze = np.maximum(haze, np.exp(-(((x - hx) ** 2 + ((y - hy) / 1.2) ** 2) / les.radius**2)))
    lung = gaussian_filter((lungs > 0).astype(np.float32), sigma=0.01 * unit, truncate=3.0)
    # The haze fills the lungs and spills over the medial borders into the hilar/mediastinal shadow.
    c = les.context
    perihilar = np.clip(1.0 - np.abs(np.abs(x) - a.mediastinum_half_width) / (0.12 + 0.08 * c), 0.0, 1.0) * (
        np.abs(y - les.center[1]) < 0.35
    )
    if c:
        outside = 1.0 - lung
        weight = np.maximum((1.0 - c) * lung, (0.75 + 1.0 * c) * perihilar * outside)
        haze = np.maximum(haze, perihilar * outside)  # the hilar haze reaches the mediastinal shadow
    else:
        weight = np.maximum(lung, 0.75 * perihilar)
    density = les.amplitude * haze * weight
    # Kerley B lines: short horizontal lines along the lateral bases.
    rng = np.random.default_rng(les.seed)
    lines = []
    for s in (-1.0, 1.0):
        for _ in range(5):
            yk = a.lung_base - rng.uniform(0.08, 0.30)
            xk = s * (a.lung_lateral - rng.uniform(0.0, 0.06))
            lines.append((np.array([[xk, yk], [xk - s * rng.uniform(0.05, 0.09), yk]]), 0.008, 1.0))
    kerley = gaussian_filter(draw_polylines(frame, lines), sigma=0.004 * unit, truncate=3.0) * lung
    density = density + 0.6 * (1.0 - c) * les.amplitude * kerley
    extent = (les.amplitude * haze * weight > 0.35 * les.amplitude) | ((kerley > 0.3) & (c < 1.0))
    if c:  # pleural effusions: fluid filling the costophrenic angles, below the lung outline
        fluid = np.zeros_like(x)
        for s in (-1.0, 1.0):
            fluid += np.exp(-(((x - s * (a.lung_lateral - 0.08)) / 0.14) ** 2 + ((y - a.lung_base - 0.02) / 0.07) ** 2))
        fluid = np.clip(fluid, 0.0, 1.0) * (1.0 - lung)
        density = density + 1.2 * c * les.amplitude * fluid
        extent |= fluid > 0.35
    return density.astype(np.float32), extent


def _fibrosis(les: Lesion, a: Anatomy, frame: Frame, lungs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = frame.grid
    unit = frame.px_per_unit()
    rng = np.random.default_rng(les.seed)
    white = rng.standard_normal(x.shape).astype(np.float32)
    band = gaussian_filter(white, 0.014 * unit, truncate=3.0) - gaussian_filter(white, 0.035 * unit, truncate=3.0)
    band /= band.std() + 1e-6
    reticular = np.exp(-((band / 0.35) ** 2))  # thin ridges along the zero crossings: a net
    inside = lungs > 0
    depth = distance_transform_edt(inside) / unit  # normalised distance to the pleura
    basal = np.clip((y - a.lung_top) / (a.lung_base - a.lung_top), 0.0, 1.0) ** 2
    weight = np.exp(-depth / les.radius) * (0.1 + 0.9 * basal) * inside
    density = les.amplitude * reticular * weight
    return density.astype(np.float32), inside & (weight > 0.3)


def _move_outside(density: np.ndarray, lungs: np.ndarray, c: float, frame: Frame) -> np.ndarray:
    """`density` x (1 - c) inside the lungs and x (1 + c) outside them (edges softened over about 2 mm)."""
    lung = gaussian_filter((lungs > 0).astype(np.float32), sigma=0.01 * frame.px_per_unit(), truncate=3.0)
    return density * ((1.0 - c) * lung + (1.0 + c) * (1.0 - lung))


_RENDERERS = {"Nodule": _nodule, "Mass": _mass, "Pneumonia": _pneumonia, "Edema": _edema, "Fibrosis": _fibrosis}


def _point_in_lung(a: Anatomy, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A random point inside either lung, at least `margin` (normalised) from its border."""
    frame = Frame(128)
    lungs = render_lungs(a, frame)
    depth = distance_transform_edt(lungs > 0) / frame.px_per_unit()
    rows, cols = np.nonzero(depth > margin)
    if rows.size == 0:
        rows, cols = np.nonzero(lungs > 0)
    i = int(rng.integers(rows.size))
    x, y = frame.grid
    return float(x[rows[i], cols[i]]), float(y[rows[i], cols[i]])
