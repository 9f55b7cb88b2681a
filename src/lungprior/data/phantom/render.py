"""Rendering one planned film: anatomy + findings -> exposure -> markers -> detector effects."""

from __future__ import annotations

import numpy as np

from lungprior.data.phantom.acquisition import degrade, expose
from lungprior.data.phantom.anatomy import LEFT, RIGHT, Anatomy, render_anatomy, render_lungs
from lungprior.data.phantom.findings import render_lesion
from lungprior.data.phantom.geometry import Frame
from lungprior.data.phantom.plan import FilmPlan
from lungprior.data.phantom.shortcuts import draw_markers
from lungprior.labels import FINDINGS

LUNG_VALUES = {RIGHT: 255, LEFT: 128}  # ground-truth mask PNG: patient's right lung 255, left lung 128


def lung_labels(plan: FilmPlan, size: int) -> tuple[Anatomy, Frame, np.ndarray]:
    """The film's anatomy (heart enlarged where a finding says so), its frame and its lung labels."""
    anatomy = plan.anatomy
    for les in plan.lesions:
        if les.heart_scale != 1.0:
            anatomy = anatomy.with_heart_scale(les.heart_scale)
    frame = plan.acquisition.frame(size, anatomy.rotation_deg)
    return anatomy, frame, render_lungs(anatomy, frame)


def render_film(plan: FilmPlan, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (image uint8, lung mask uint8 with LUNG_VALUES, lesion bits uint8: bit k = FINDINGS[k])."""
    anatomy, frame, lungs = lung_labels(plan, size)
    density = render_anatomy(anatomy, frame, lungs)
    lesion_bits = np.zeros((size, size), dtype=np.uint8)
    for les in plan.lesions:
        d, extent = render_lesion(les, anatomy, frame, lungs)
        density += d
        lesion_bits[extent] |= np.uint8(1 << FINDINGS.index(les.kind))
    marker_rng, noise_rng = (np.random.default_rng([plan.noise_seed, stream]) for stream in (1, 2))
    img = expose(density, plan.acquisition)
    img = draw_markers(img, plan.markers, anatomy, frame, marker_rng, plan.marker_placement)
    img = degrade(img, plan.acquisition, frame, noise_rng)
    image = np.round(img * 255.0).astype(np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    for side, value in LUNG_VALUES.items():
        mask[lungs == side] = value
    return image, mask, lesion_bits
