"""Shortcut markers: objects outside the lung fields whose presence can be made to correlate with labels.

Each finding has its own marker. With bias B, a film's marker for finding k equals the label with
probability B and is otherwise present at the base rate, independent of the label:
P(marker | y) = B * y + (1 - B) * BASE_RATE. At B = 0 markers still appear, as uninformative distractors,
so a model that learned them in training (B > 0) is misled on an unbiased test split.

Markers sit at different distances from the lungs, so masks of different looseness hide different ones:
- Mass: a lead side-marker letter in the top-left corner (far from the lungs).
- Nodule: burned-in annotation text in the top-right corner (far).
- Pneumonia: an ECG lead wire in the lateral chest wall, about 10 mm outside the right lung (near).
- Edema: a brighter band along the bottom edge of the film (far).
- Fibrosis: an ECG electrode above the left apex (near).
With placement "far" the two near markers move below the lung bases, beyond a 20 mm loose mask and clear of the
film edges and shutters: the lead wire across the lower right chest, the electrode below the left base.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from lungprior.data.phantom.anatomy import Anatomy
from lungprior.data.phantom.geometry import Frame, draw_polylines
from lungprior.labels import FINDINGS

BASE_RATE = 0.2
PLACEMENTS = ("mixed", "far")
_GLYPH_R = ["1110", "1001", "1001", "1110", "1010", "1001", "1001"]


def sample_markers(labels: dict[str, int], bias: float, rng: np.random.Generator) -> dict[str, int]:
    """Decide which markers a film carries, given its labels and the bias strength in [0, 1]."""
    out = {}
    for k in FINDINGS:
        tied = rng.random() < bias
        out[k] = int(labels[k]) if tied else int(rng.random() < BASE_RATE)
    return out


def draw_markers(
    img: np.ndarray,
    present: dict[str, int],
    a: Anatomy,
    frame: Frame,
    rng: np.random.Generator,
    placement: str = "mixed",
) -> np.ndarray:
    """Draw the present markers onto an intensity image (float, [0, 1]); returns a new array."""
    out = img.copy()
    size = img.shape[0]
    if present.get("Mass"):
        cell = max(1, size // 80)
        r0 = c0 = max(2, size // 28)
        for i, row in enumerate(_GLYPH_R):
            for j, bit in enumerate(row):
                if bit == "1":
                    out[r0 + i * cell : r0 + (i + 1) * cell, c0 + j * cell : c0 + (j + 1) * cell] = 0.97
    if present.get("Nodule"):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        h = max(2, size // 64)
        c = size - max(2, size // 28)
        for _ in range(int(rng.integers(4, 7))):
            w = int(rng.integers(h, 2 * h + 1))
            draw.rectangle((c - w, size // 28, c, size // 28 + 2 * h), fill=240)
            c -= w + h
        out = np.maximum(out, np.asarray(canvas, dtype=np.float32) / 255.0)
    if present.get("Edema"):
        band = max(2, round(0.07 * size))
        out[size - band :] = np.clip(out[size - band :] + 0.18, 0.0, 1.0)
    lines = _far_lines(present, rng) if placement == "far" else _near_lines(present, a, rng)
    if lines:
        out = np.maximum(out, draw_polylines(frame, lines))
    return out


def _near_lines(present: dict[str, int], a: Anatomy, rng: np.random.Generator) -> list:
    """The lead wire beside the right lung and the electrode above the left apex (placement "mixed")."""
    lines = []
    if present.get("Pneumonia"):
        ys = np.linspace(1.1, a.lung_base - 0.35, 24)
        xs = -(a.lung_lateral + 0.10) - 0.02 * np.sin(ys * 6.0 + rng.uniform(0, 6.28))
        lines.append((np.stack([xs, ys], axis=1), 0.012, 0.95))
    if present.get("Fibrosis"):
        cx, cy = 0.50 + rng.uniform(-0.04, 0.04), a.lung_top - 0.14
        lines += _electrode(cx, cy, [[cx, cy - 0.035], [cx + 0.05, cy - 0.30]])  # wire running up
    return lines


def _far_lines(present: dict[str, int], rng: np.random.Generator) -> list:
    """The same two markers below the lung bases, away from the film edges and the shutters (placement "far")."""
    lines = []
    if present.get("Pneumonia"):
        xs = np.linspace(-0.88, -0.40, 16)
        ys = 0.82 + 0.02 * np.sin(xs * 6.0 + rng.uniform(0, 6.28))
        lines.append((np.stack([xs, ys], axis=1), 0.012, 0.95))
    if present.get("Fibrosis"):
        cx, cy = 0.62 + rng.uniform(-0.02, 0.02), 0.84
        lines += _electrode(cx, cy, [[cx + 0.035, cy], [cx + 0.25, cy - 0.03]])  # wire running sideways
    return lines


def _electrode(cx: float, cy: float, wire: list[list[float]]) -> list:
    """An ECG electrode (a ring of radius 0.035 at cx, cy) and its wire, as polylines."""
    t = np.linspace(0, 2 * np.pi, 25)
    ring = np.stack([cx + 0.035 * np.cos(t), cy + 0.035 * np.sin(t)], axis=1)
    return [(ring, 0.014, 0.95), (np.array(wire), 0.010, 0.9)]
