"""Simulated studies with known truth, for the level, power and coverage of the paired AUROC tests.

Each patient i has, per finding k, a status z_ik ~ Bernoulli(prevalence) and F_i films (F_i uniform between
the design's bounds). A film's label y_ijk is z_ik, except for a share `flip` of films whose label is drawn
afresh with the same prevalence (flip 0: a patient's films all agree). Two models score the same films:

    logit_m = (signal_m + slope_sd v_ik^m) y_ijk + patient_sd u_ik^m + e_ijk^m,   u, v, e ~ N(0, 1),

so each model errs on a patient in its own way (u^a, u^b independent) and that error repeats over the
patient's films; `slope_sd` makes how well a model sees the finding vary by patient. Under the null both
models have the same signal; under the alternative model a has `signal + effect`. Scores are
sigmoid(logit), so the No Finding score (1 - max p) is defined as in `lungprior compare`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungprior.labels import FINDINGS


@dataclass(frozen=True)
class Design:
    """A simulated study: patients, films per patient (min, max), prevalence and the patient effects."""

    name: str
    patients: int
    films: tuple[int, int]
    prevalence: float = 0.3
    flip: float = 0.3
    patient_sd: float = 1.5
    slope_sd: float = 0.0
    positive_patients: int | None = None  # exactly this many patients with each finding (else by prevalence)

    @property
    def shape(self) -> str:
        lo, hi = self.films
        return f"{self.patients} x {lo}" if lo == hi else f"{self.patients} x {lo}-{hi}"


DESIGNS = (
    Design("one film per patient", 300, (1, 1)),
    Design("reference", 50, (6, 6)),
    Design("few large clusters", 15, (20, 20)),
    Design("very unequal clusters", 40, (1, 30)),
    Design("prevalence 5 %", 150, (1, 8), prevalence=0.05, flip=0.1),
    Design("prevalence 2 %", 300, (1, 4), prevalence=0.02, flip=0.1),
    Design("labels shared within patient", 40, (8, 8), flip=0.0),
    Design("patient-specific model effects", 50, (6, 6), slope_sd=1.0),
)


def simulate_study(rng: np.random.Generator, design: Design, *, signal: float = 1.0, effect: float = 0.0,
                   n_classes: int = len(FINDINGS)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One data set: labels (n, k), scores of model a and b (n, k) in (0, 1), patient ids (n,)."""
    lo, hi = design.films
    groups = np.repeat(np.arange(design.patients), rng.integers(lo, hi + 1, size=design.patients))
    n, k = groups.size, n_classes
    if design.positive_patients is None:
        z = (rng.random((design.patients, k)) < design.prevalence)[groups]
    else:
        ranks = rng.random((design.patients, k)).argsort(axis=0).argsort(axis=0)
        z = (ranks < design.positive_patients)[groups]
    fresh = rng.random((n, k)) < design.prevalence
    y = np.where(rng.random((n, k)) < design.flip, fresh, z).astype(np.int8)

    def scores(strength: float) -> np.ndarray:
        slope = strength + design.slope_sd * rng.normal(size=(design.patients, k))[groups]
        logit = slope * y + design.patient_sd * rng.normal(size=(design.patients, k))[groups] + rng.normal(size=(n, k))
        return 1.0 / (1.0 + np.exp(-logit))

    return y, scores(signal + effect), scores(signal), groups


def simulate(rng: np.random.Generator, n_patients: int, films: int, *, signal: float = 1.0, effect: float = 0.0,
             patient_sd: float = 1.5, prevalence: float = 0.3, flip: float = 0.1,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One finding: labels, scores of model a and b, patient ids (n_patients * films films)."""
    design = Design("", n_patients, (films, films), prevalence, flip, patient_sd)
    y, a, b, groups = simulate_study(rng, design, signal=signal, effect=effect, n_classes=1)
    return y[:, 0], a[:, 0], b[:, 0], groups
