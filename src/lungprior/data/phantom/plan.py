"""Planning the synthetic benchmark: patients, their films, labels, splits and markers (no pixels yet).

Everything random is drawn from streams keyed by (seed, patient, film), so a film's content does not depend
on how many workers render it or in which order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lungprior.data.phantom.acquisition import Acquisition, sample_acquisition
from lungprior.data.phantom.anatomy import Anatomy, sample_anatomy
from lungprior.data.phantom.config import PhantomConfig
from lungprior.data.phantom.findings import Lesion, sample_lesion
from lungprior.data.phantom.shortcuts import sample_markers
from lungprior.labels import FINDINGS

CHRONIC = ("Mass", "Nodule", "Fibrosis")  # present on every film of a patient who has them
ACUTE_PER_FILM = (
    0.7  # an acute finding (Pneumonia, Edema) shows on each film of a susceptible patient with this probability
)


@dataclass(frozen=True)
class FilmPlan:
    """One film: who, which split, which findings and markers, and how it was acquired."""

    index: int
    image_id: str
    patient_id: str
    split: str
    anatomy: Anatomy
    lesions: tuple[Lesion, ...]
    labels: dict[str, int]
    markers: dict[str, int]
    acquisition: Acquisition
    noise_seed: int
    marker_placement: str = "mixed"


def _rng(cfg: PhantomConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, *key]))


def plan_benchmark(cfg: PhantomConfig) -> list[FilmPlan]:
    """Plan `cfg.n` films over as many patients as needed, with patient-disjoint splits."""
    patients = []
    total = 0
    while total < cfg.n:
        rng = _rng(cfg, len(patients), 0)
        count = min(int(rng.geometric(1.0 / cfg.images_per_patient)), cfg.n - total)
        patients.append(count)
        total += count
    splits = _assign_splits(len(patients), cfg)
    films: list[FilmPlan] = []
    for pid, count in enumerate(patients):
        rng = _rng(cfg, pid, 1)
        anatomy = sample_anatomy(rng)
        has = {}
        for k in FINDINGS:
            p = cfg.prevalence_of(k) if k in CHRONIC else min(1.0, cfg.prevalence_of(k) / ACUTE_PER_FILM)
            has[k] = bool(rng.random() < p)
        lesions = {k: sample_lesion(k, anatomy, rng, context=cfg.context) for k in FINDINGS if has[k]}
        # contrast only: geometry, labels and the random streams are unchanged
        lesions = {k: _scaled(les, cfg.conspicuity_of(k)) for k, les in lesions.items()}
        bias = _split_bias(cfg, splits[pid])
        for j in range(count):
            frng = _rng(cfg, pid, 2, j)
            labels = {k: int(has[k] and (k in CHRONIC or frng.random() < ACUTE_PER_FILM)) for k in FINDINGS}
            markers = sample_markers(labels, bias, frng)
            acq = sample_acquisition(frng)
            films.append(
                FilmPlan(
                    index=len(films),
                    image_id=f"phantom_{len(films):05d}",
                    patient_id=f"P{pid:05d}",
                    split=splits[pid],
                    anatomy=anatomy,
                    lesions=tuple(lesions[k] for k in FINDINGS if labels[k]),
                    labels=labels,
                    markers=markers,
                    acquisition=acq,
                    noise_seed=int(frng.integers(2**31)),
                    marker_placement=cfg.markers,
                )
            )
    return films


def _scaled(les: Lesion, factor: float) -> Lesion:
    return les if factor == 1.0 else replace(les, amplitude=les.amplitude * factor)


def _split_bias(cfg: PhantomConfig, split: str) -> float:
    """Shortcut strength of a split: `test_bias` in test, `val_bias` (when set) in val, else `bias`."""
    if split == "test":
        return cfg.test_bias
    if split == "val" and cfg.val_bias is not None:
        return cfg.val_bias
    return cfg.bias


def _assign_splits(n_patients: int, cfg: PhantomConfig) -> list[str]:
    """Patient-level split with exact fractions (rounded), shuffled by the seed."""
    order = _rng(cfg, 2**31 - 1).permutation(n_patients)
    n_test = round(cfg.test_fraction * n_patients)
    n_val = round(cfg.val_fraction * n_patients)
    out = ["train"] * n_patients
    for rank, pid in enumerate(order):
        if rank < n_test:
            out[pid] = "test"
        elif rank < n_test + n_val:
            out[pid] = "val"
    return out
