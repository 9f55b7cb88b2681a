"""Chest anatomy of the synthetic benchmark: a patient's body, lungs, heart, mediastinum and skeleton.

`sample_anatomy` draws one patient's parameters (plausible ranges, varied per patient); `render_anatomy`
turns them into a density map (attenuation, arbitrary units) and the ground-truth lung labels in a `Frame`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from lungprior.data.phantom.geometry import Frame, draw_ellipses, draw_polylines, fill_polygon

RIGHT, LEFT = 1, 2  # lung labels: the patient's right lung lies on the image's left (x < 0)


@dataclass(frozen=True)
class Anatomy:
    """One patient's chest, in normalised body coordinates."""

    rotation_deg: float
    body_half_width: float
    lung_top: float  # apex height
    lung_base: float  # costophrenic angle height
    lung_lateral: float  # lateral extent of the lungs
    dome_height: float  # how far the diaphragm domes rise above the costophrenic angles
    right_dome_offset: float  # the right hemidiaphragm usually sits higher
    mediastinum_half_width: float
    heart_center: tuple[float, float]
    heart_radii: tuple[float, float]
    lung_air: float  # how dark the lung fields are
    rib_count: int
    rib_spacing: float
    rib_start: float
    gastric_bubble: bool
    vessel_seed: int
    extras: dict = field(default_factory=dict)

    def with_heart_scale(self, factor: float) -> Anatomy:
        """A copy with the heart enlarged (cardiomegaly) or shrunk by `factor`."""
        rx, ry = self.heart_radii
        cx, cy = self.heart_center
        return replace(self, heart_radii=(rx * factor, ry * factor**0.6), heart_center=(cx + 0.03 * (factor - 1), cy))

    def hila(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Approximate hilar points (right, left) in normalised coordinates."""
        y = self.lung_top + 0.42 * (self.lung_base - self.lung_top)
        m = self.mediastinum_half_width
        return (-m - 0.06, y), (m + 0.07, y + 0.03)



def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's anatomy."""
    u = rng.uniform
    lung_top = u(-0.80, -0.66)
    lung_base = u(0.42, 0.62)
    return Anatomy(
        rotation_deg=u(-3.0, 3.0),
        body_half_width=u(0.86, 0.97),
        lung_top=lung_top,
        lung_base=lung_base,
        lung_lateral=u(0.70, 0.82),
        dome_height=u(0.10, 0.20),
        right_dome_offset=u(0.0, 0.06),
        mediastinum_half_width=u(0.075, 0.11),
        heart_center=(u(0.09, 0.15), lung_base - u(0.20, 0.26)),
        heart_radii=(u(0.30, 0.37), u(0.18, 0.23)),
        lung_air=u(0.50, 0.62),
        rib_count=10,
        rib_spacing=(lung_base - lung_top + 0.28) / 10.0 * u(0.95, 1.05),
        rib_start=lung_top - u(0.04, 0.09),
        gastric_bubble=bool(rng.random() < 0.7),
        vessel_seed=int(rng.integers(2**31)),
    )


def lung_outline(a: Anatomy, side: int) -> np.ndarray:
    """Closed polygon of one lung (before removing heart and mediastinum), normalised coordinates."""
    s = -1.0 if side == RIGHT else 1.0
    base = a.lung_base - (a.right_dome_offset if side == RIGHT else 0.0)
    med = a.mediastinum_half_width * 0.6
    apex = np.array([0.30, a.lung_top])
    cp = np.array([a.lung_lateral + 0.02, base])
    t = np.linspace(0.0, 1.0, 28)
    # Lateral border: from the apex, bulging outward, down to the costophrenic angle.
    lat_x = apex[0] + (cp[0] - apex[0]) * np.sin(t * np.pi / 2) ** 0.55
    lat_y = apex[1] + (cp[1] - apex[1]) * t
    # Diaphragm dome: from the costophrenic angle medially, rising to its peak then down to the heart.
    d_x = cp[0] + (med - cp[0]) * t
    d_y = base + (base - 0.05 - base) * t - a.dome_height * np.sin(np.pi * np.clip(t * 1.15, 0, 1))
    # Medial border: from the cardiophrenic point up to the apex.
    m_x = med + (0.16 - med) * t**2
    m_y = (base - 0.05) + (apex[1] + 0.06 - (base - 0.05)) * t
    # Rounded apex joining the medial border back to the start of the lateral border.
    a_t = np.linspace(0.0, np.pi / 2, 10)
    a_x = apex[0] - (apex[0] - 0.16) * np.cos(a_t)
    a_y = apex[1] + 0.06 * (1.0 - np.sin(a_t))
    xs = np.concatenate([lat_x, d_x[1:], m_x[1:], a_x[1:]])
    ys = np.concatenate([lat_y, d_y[1:], m_y[1:], a_y[1:]])
    return np.stack([s * xs, ys], axis=1)


def render_lungs(a: Anatomy, frame: Frame) -> np.ndarray:
    """Ground-truth lung labels (0 background, RIGHT, LEFT): lung fields minus heart and mediastinum."""
    x, y = frame.grid
    blocked = _heart_field(a, x, y) > 0.5
    blocked |= np.abs(x) < a.mediastinum_half_width
    labels = np.zeros((frame.size, frame.size), dtype=np.uint8)
    for side in (RIGHT, LEFT):
        inside = fill_polygon(frame, lung_outline(a, side)) & ~blocked
        labels[inside] = side
    return labels


def _heart_field(a: Anatomy, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 inside the heart silhouette, with a soft edge; the heart's lower half merges into the diaphragm."""
    cx, cy = a.heart_center
    rx, ry = a.heart_radii
    xl = np.where(x < cx, (x - cx) / (rx * 0.78), (x - cx) / rx)  # more heart to the patient's left
    r = np.sqrt(xl**2 + ((y - cy) / ry) ** 2)
    heart = np.clip((1.08 - r) / 0.16, 0.0, 1.0)
    below = (y > cy) & (np.abs(x - cx * 0.7) < rx * 0.9)
    return np.where(below, np.maximum(heart, np.clip((y - cy) / 0.05, 0, 1) * (np.abs(xl) < 1.0)), heart)


def render_anatomy(a: Anatomy, frame: Frame, lungs: np.ndarray) -> np.ndarray:
    """Density map (float32) of body, lungs, mediastinum, heart, spine, ribs, clavicles and shoulders."""
    x, y = frame.grid
    unit = frame.px_per_unit()
    # Soft tissue: a body whose thickness falls off toward its edges, narrowing to the neck at the top.
    width = a.body_half_width - 0.55 * np.clip((-0.84 - y) / 0.16, 0.0, 1.0) ** 0.7
    thick = np.clip(1.0 - (x / np.maximum(width, 0.2)) ** 2, 0.0, 1.0) ** 0.5
    density = 1.0 * thick
    lung_soft = gaussian_filter((lungs > 0).astype(np.float32), sigma=0.012 * unit, truncate=3.0)
    density -= a.lung_air * lung_soft * (0.75 + 0.25 * thick)
    density += 0.30 * np.clip(1.0 - np.abs(x) / (a.mediastinum_half_width + 0.04), 0.0, 1.0) ** 0.5
    soft = 0.22 * _heart_field(a, x, y)
    if a.gastric_bubble:
        soft -= 0.25 * (((x - 0.42) / 0.13) ** 2 + ((y - a.lung_base - 0.07) / 0.06) ** 2 < 1.0)
    density += gaussian_filter(soft, sigma=0.01 * unit, truncate=3.0)
    density += _hilar_vessels(a, frame, lung_soft)
    density += _skeleton(a, frame)
    return density.astype(np.float32)


def _hilar_vessels(a: Anatomy, frame: Frame, lung_soft: np.ndarray) -> np.ndarray:
    """Branching vascular markings radiating from each hilum, fading toward the periphery."""
    rng = np.random.default_rng(a.vessel_seed)
    lines: list[tuple[np.ndarray, float, float]] = []
    for (hx, hy), s in zip(a.hila(), (-1.0, 1.0), strict=True):
        for _ in range(14):
            ang = rng.uniform(-0.55 * np.pi, 0.55 * np.pi)  # fan toward the lateral side
            pts = [np.array([hx, hy])]
            direction = np.array([s * np.cos(ang), np.sin(ang) * 1.1])
            for step in range(6):
                direction = direction + rng.normal(0, 0.25, 2)
                direction /= np.linalg.norm(direction)
                pts.append(pts[-1] + direction * (0.09 - 0.008 * step))
            pts_arr = np.array(pts)
            lines.append((pts_arr[:4], 0.018, 0.8))
            lines.append((pts_arr[3:], 0.010, 0.5))
    canvas = draw_polylines(frame, lines)
    canvas = gaussian_filter(canvas, sigma=0.006 * frame.px_per_unit(), truncate=3.0)
    return 0.16 * canvas * lung_soft


def _skeleton(a: Anatomy, frame: Frame) -> np.ndarray:
    """Spine, posterior and anterior ribs, clavicles and humeral heads."""
    lines: list[tuple[np.ndarray, float, float]] = []
    for s in (-1.0, 1.0):
        for k in range(a.rib_count):
            y0 = a.rib_start + k * a.rib_spacing
            xr = np.linspace(0.0, 1.0, 20)
            xs = 0.06 + xr * (a.body_half_width - 0.12)
            post = np.stack([s * xs, y0 - 0.10 * xr + 0.30 * xr**2], axis=1)
            lines.append((post, 0.032, 0.55))
            ant_x = np.linspace(a.body_half_width - 0.15, 0.25, 12)
            y_lat = y0 + 0.20
            ant = np.stack([s * ant_x, y_lat + 0.20 * (1 - (ant_x - 0.25) / (a.body_half_width - 0.40))], axis=1)
            lines.append((ant, 0.040, 0.28))
        t = np.linspace(0, 1, 16)
        clav = np.stack([s * (0.07 + 0.58 * t), a.lung_top + 0.07 - 0.10 * t + 0.05 * np.sin(np.pi * t)], axis=1)
        lines.append((clav, 0.055, 1.0))
    ribs = draw_polylines(frame, lines)
    unit = frame.px_per_unit()
    cortex = np.clip(ribs - gaussian_filter(ribs, sigma=0.012 * unit, truncate=3.0), 0.0, None)
    # Vertebral bodies stacked down the midline, with pedicles, and the humeral heads.
    bones = []
    for k in range(-12, 13):
        cy = k * 0.095
        bones.append((0.0, cy, 0.085, 0.038, 0.9 * 0.16))
        bones.append((-0.055, cy - 0.01, 0.018, 0.022, 0.16))
        bones.append((0.055, cy - 0.01, 0.018, 0.022, 0.16))
    for s in (-1.0, 1.0):
        bones.append((s * (a.body_half_width - 0.04), a.lung_top - 0.02, 0.12, 0.13, 0.45))
    bone = draw_ellipses(frame, bones)
    bone *= np.clip(0.35 + 0.65 * (frame.grid[1] < a.lung_top + 0.5) + (bone > 0.3), 0, 1)
    return gaussian_filter(0.22 * ribs + 0.45 * cortex + bone, sigma=0.004 * unit, truncate=3.0)
