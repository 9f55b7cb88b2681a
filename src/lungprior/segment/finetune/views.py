"""Augmented views of a film for fine-tuning: with a frozen encoder each view is encoded once and cached.

A view is a small affine (scale, shift, rotation; never a left-right flip: the patient's right lung stays on
the image's left) applied to the film and its lung mask together, then gamma and contrast on the film. View 0
is the film itself. Views are fixed by (seed, image id, view index), so every fold and rerun sees the same;
with a trained encoder (the full recipe) the same views are made on the fly and fed to it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ViewSettings:
    """Ranges of the random view parameters."""

    scale: float = 0.12  # zoom in U(1 - scale, 1 + scale)
    shift: float = 0.06  # translation up to this fraction of each side
    degrees: float = 6.0  # rotation in U(-degrees, degrees)
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.8, 1.25)


def view_key(view: int, seed: int, settings: ViewSettings | None = None) -> str:
    """The embedding-cache variant of a view: "" for the film itself, else the view, seed and settings."""
    if view == 0:
        return ""
    text = json.dumps(asdict(settings or ViewSettings()), sort_keys=True)
    return f"view{int(view)}-seed{int(seed)}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def view_rng(seed: int, image_id: str, view: int) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(str(image_id).encode("utf-8")).digest()[:4], "little")
    return np.random.default_rng([int(seed), digest, int(view)])


def make_view(
    image: np.ndarray, mask: np.ndarray, view: int, *, image_id: str, seed: int = 0,
    settings: ViewSettings | None = None, extra: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(image, mask, extra) of view `view` of a float [0, 1] film, its bool mask and an optional bool mask."""
    if view == 0:
        return image, mask, extra
    s = settings or ViewSettings()
    rng = view_rng(seed, image_id, view)
    h, w = image.shape
    zoom = rng.uniform(1 - s.scale, 1 + s.scale)
    angle = rng.uniform(-s.degrees, s.degrees)
    tx, ty = rng.uniform(-s.shift, s.shift) * w, rng.uniform(-s.shift, s.shift) * h
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, zoom)
    matrix[:, 2] += (tx, ty)

    def warp(a: np.ndarray, interp: int) -> np.ndarray:
        return cv2.warpAffine(a, matrix, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    out = warp(image.astype(np.float32), cv2.INTER_LINEAR)
    out = np.clip(out, 0.0, 1.0) ** rng.uniform(*s.gamma)
    mean = float(out.mean())
    out = np.clip((out - mean) * rng.uniform(*s.contrast) + mean, 0.0, 1.0).astype(np.float32)
    warped_mask = warp(mask.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    warped_extra = None if extra is None else warp(extra.astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    return out, warped_mask, warped_extra
