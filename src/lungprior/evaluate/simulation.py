"""Level and power of the paired AUROC tests when patients have one or several films (a seeded simulation).

Each patient i has a finding or not (z_i ~ Bernoulli(prevalence)) and films j = 1..F whose labels y_ij follow
z_i except for a share `flip` of films (the finding seen on one film and not on another). Two models score
the same films:

    score_m = signal_m * y_ij + u_i^m + e_ij^m,   u_i^m ~ N(0, patient_sd^2),  e_ij^m ~ N(0, 1),

so each model errs on a patient in its own way (u^a and u^b independent) and that error repeats over the
patient's films. Under the null both models have the same signal; under the alternative model a has
`signal + effect`. The table gives the share of simulated data sets in which each test rejects at `alpha`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from lungprior.evaluate.bootstrap import paired_bootstrap_diff
from lungprior.evaluate.clustered import delong_paired, obuchowski_test
from lungprior.evaluate.scores import DegenerateDataWarning

DESIGNS = ((300, 1), (50, 6))  # (patients, films per patient): 300 films in both
TESTS = ("DeLong", "Obuchowski", "patient bootstrap")


def simulate(rng: np.random.Generator, n_patients: int, films: int, *, signal: float = 1.0, effect: float = 0.0,
             patient_sd: float = 1.5, prevalence: float = 0.3, flip: float = 0.1,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One data set: labels, scores of model a and b, patient ids (all of length n_patients * films)."""
    groups = np.repeat(np.arange(n_patients), films)
    n = groups.size
    z = (rng.random(n_patients) < prevalence)[groups]
    y = np.where(rng.random(n) < flip, ~z, z).astype(np.int8)
    a = (signal + effect) * y + patient_sd * rng.normal(size=n_patients)[groups] + rng.normal(size=n)
    b = signal * y + patient_sd * rng.normal(size=n_patients)[groups] + rng.normal(size=n)
    return y, a, b, groups


def rejects(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, alpha: float,
            n_resamples: int, seed: int) -> dict[str, bool]:
    """Whether each test rejects AUROC(a) = AUROC(b) at level alpha on one data set (no bootstrap if
    n_resamples is 0)."""
    out = {"DeLong": delong_paired(y, a, b).p < alpha, "Obuchowski": obuchowski_test(y, a, b, groups).p < alpha}
    if n_resamples:
        out["patient bootstrap"] = paired_bootstrap_diff(y, a, b, groups, n_resamples, seed)["p"] < alpha
    return out


def level_power_table(n_sims: int = 400, *, effect: float = 1.0, patient_sd: float = 1.5, flip: float = 0.1,
                      alpha: float = 0.05, n_resamples: int = 0, seed: int = 0) -> pd.DataFrame:
    """Rejection rates per design (patients x films), truth (null / alternative) and test; the patient bootstrap
    (`n_resamples` resamples) only when n_resamples > 0. Same seed, same table."""
    tests = TESTS if n_resamples else TESTS[:2]
    rows = []
    for n_patients, films in DESIGNS:
        for truth, eff in (("null", 0.0), (f"a better (signal +{effect:g})", effect)):
            rng = np.random.default_rng([seed, n_patients, films, round(eff * 1000)])
            hits = dict.fromkeys(tests, 0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateDataWarning)
                for i in range(n_sims):
                    y, a, b, g = simulate(rng, n_patients, films, effect=eff, patient_sd=patient_sd, flip=flip)
                    for name, hit in rejects(y, a, b, g, alpha, n_resamples, seed + i).items():
                        hits[name] += int(hit)
            rows.append({"patients x films": f"{n_patients} x {films}", "truth": truth,
                         **{f"{name} rejects": hits[name] / n_sims for name in tests}})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (rates with two decimals)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)
