"""Geometry for the synthetic benchmark: a normalised body frame mapped onto the pixel grid.

Normalised coordinates: x in [-1, 1] from the image's left edge to its right (the patient's right lung is on
the image's left, as in a PA film), y in [-1, 1] from top to bottom. A `Frame` holds the affine map from
normalised coordinates to pixels, which carries the patient's rotation and the acquisition's shift and scale,
so that everything drawn in one frame (anatomy, findings, masks) stays registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Frame:
    """Affine map from normalised body coordinates to pixel coordinates (col, row)."""

    size: int
    rotation_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    @cached_property
    def matrix(self) -> np.ndarray:
        """2x3 matrix taking (x, y, 1) to (col, row)."""
        half = self.size / 2.0
        t = np.deg2rad(self.rotation_deg)
        c, s = np.cos(t) * self.scale * half, np.sin(t) * self.scale * half
        cx = half - 0.5 + self.shift[0] * half
        cy = half - 0.5 + self.shift[1] * half
        return np.array([[c, -s, cx], [s, c, cy]], dtype=np.float64)

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) normalised points to (N, 2) pixel points (col, row)."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def px_per_unit(self) -> float:
        """Pixels per normalised unit."""
        return self.scale * self.size / 2.0

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (x, y) coordinates of every pixel centre, each (size, size) float32."""
        a = self.matrix[:, :2]
        inv = np.linalg.inv(a)
        rows, cols = _pixel_grid(self.size)
        dc, dr = cols - self.matrix[0, 2], rows - self.matrix[1, 2]
        x = inv[0, 0] * dc + inv[0, 1] * dr
        y = inv[1, 0] * dc + inv[1, 1] * dr
        return x.astype(np.float32), y.astype(np.float32)


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    return rows, cols


def fill_polygon(frame: Frame, pts: np.ndarray) -> np.ndarray:
    """Rasterise a closed normalised polygon into a bool mask."""
    img = Image.new("1", (frame.size, frame.size), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in frame.to_px(pts)], fill=1)
    return np.asarray(img, dtype=bool)


def draw_polylines(frame: Frame, lines: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
    """Draw polylines given as (points, width in normalised units, value in [0, 1]); returns float32 canvas.

    Overlapping lines take the maximum value (as bone or metal would not add up in this simple model).
    """
    img = Image.new("L", (frame.size, frame.size), 0)
    draw = ImageDraw.Draw(img)
    unit = frame.px_per_unit()
    for pts, width, value in lines:
        px = frame.to_px(pts)
        w = max(1, round(width * unit))
        draw.line([tuple(p) for p in px], fill=round(255 * value), width=w, joint="curve" if w > 3 else None)
    return np.asarray(img, dtype=np.float32) / 255.0


def draw_ellipses(frame: Frame, ellipses: list[tuple[float, float, float, float, float]]) -> np.ndarray:
    """Fill axis-aligned ellipses (cx, cy, rx, ry, value), normalised units; float32 canvas, larger values on top."""
    img = Image.new("L", (frame.size, frame.size), 0)
    draw = ImageDraw.Draw(img)
    unit = frame.px_per_unit()
    for cx, cy, rx, ry, value in sorted(ellipses, key=lambda e: e[4]):
        ((c, r),) = frame.to_px(np.array([cx, cy]))
        draw.ellipse((c - rx * unit, r - ry * unit, c + rx * unit, r + ry * unit), fill=round(255 * value))
    return np.asarray(img, dtype=np.float32) / 255.0


def curve(x0: float, x1: float, fy, n: int = 24) -> np.ndarray:
    """Sample y = fy(x) for x from x0 to x1 as (n, 2) points."""
    xs = np.linspace(x0, x1, n)
    return np.stack([xs, fy(xs)], axis=1)
