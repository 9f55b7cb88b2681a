"""Acquisition of a synthetic film: positioning, exposure, gamma, blur, noise and collimation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from lungprior.data.phantom.geometry import Frame

DENSITY_REF = 1.9  # density mapped to (almost) white at nominal exposure


@dataclass(frozen=True)
class Acquisition:
    """How one film was taken (independent of the labels)."""

    rotation_deg: float
    scale: float
    shift: tuple[float, float]
    exposure: float
    gamma: float
    blur: float  # Gaussian sigma, in normalised units
    noise: float  # standard deviation of additive noise, intensity units
    collimation: tuple[float, float, float, float]  # fraction shuttered at top, bottom, left, right
    shutter_value: float

    def frame(self, size: int, patient_rotation_deg: float = 0.0) -> Frame:
        """The pixel frame of this film for a patient rotated by `patient_rotation_deg`."""
        return Frame(size, self.rotation_deg + patient_rotation_deg, self.scale, self.shift)


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    """Draw acquisition settings for one film."""
    u = rng.uniform
    shutter = tuple(float(v) for v in (u(0, 0.06, 4) * (rng.random(4) < 0.35)))
    return Acquisition(
        rotation_deg=u(-4.0, 4.0),
        scale=u(0.92, 1.04),
        shift=(u(-0.04, 0.04), u(-0.03, 0.05)),
        exposure=u(0.8, 1.25),
        gamma=u(0.8, 1.25),
        blur=u(0.002, 0.008),
        noise=u(0.006, 0.02),
        collimation=shutter,  # type: ignore[arg-type]
        shutter_value=float(rng.choice([0.0, 0.95])),
    )


def expose(density: np.ndarray, acq: Acquisition) -> np.ndarray:
    """Map density to displayed intensity in [0, 1] (bright = dense, as on a film)."""
    k = 1.6 * acq.exposure
    img = (1.0 - np.exp(-k * np.clip(density, 0.0, None))) / (1.0 - np.exp(-k * DENSITY_REF))
    return np.clip(img, 0.0, 1.0) ** acq.gamma


def degrade(img: np.ndarray, acq: Acquisition, frame: Frame, rng: np.random.Generator) -> np.ndarray:
    """Detector blur, quantum-like noise and collimator shutters; returns float32 in [0, 1]."""
    out = gaussian_filter(img.astype(np.float32), sigma=acq.blur * frame.px_per_unit(), truncate=3.0)
    noise = rng.standard_normal(out.shape).astype(np.float32)
    out = out + acq.noise * (0.5 + out) * gaussian_filter(noise, 0.6, truncate=3.0) * 1.6
    size = img.shape[0]
    top, bottom, left, right = (round(f * size) for f in acq.collimation)
    if top:
        out[:top] = acq.shutter_value
    if bottom:
        out[size - bottom :] = acq.shutter_value
    if left:
        out[:, :left] = acq.shutter_value
    if right:
        out[:, size - right :] = acq.shutter_value
    return np.clip(out, 0.0, 1.0).astype(np.float32)
