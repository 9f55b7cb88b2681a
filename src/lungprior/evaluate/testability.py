"""Whether a paired AUROC comparison can be tested at all, and how a p value is printed.

A clustered (or bootstrap) test of a class needs enough *patients* on both sides of the label: when every
positive film belongs to one patient, there is no between-patient variation to estimate the variance from,
and a normal-reference test rejects a true null most of the time. `testability` counts films and patients with
and without the finding and refuses a p and a CI below the minimum; `format_p` prints a p that sits at a
bootstrap's floor as a bound ("p ≤ x").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from lungprior.evaluate.clustered import side_patients

# The fewest patients with (and without) the finding: the smallest count from which on the default test holds
# its level in simulation (docs/statistics.md, "Testability"; scripts/simulate_tests.py). With one patient a side
# no variance exists.
MIN_POS_PATIENTS = 2
MIN_NEG_PATIENTS = 2

# comparisons.csv columns written from a `Testability`
COUNT_COLUMNS = ("n_pos", "n_pos_patients", "n_neg", "n_neg_patients", "testable", "note")


@dataclass(frozen=True)
class Testability:
    """Films and patients with (pos) and without (neg) the finding; `note` says why a row is not testable."""

    n_pos: int
    n_pos_patients: int
    n_neg: int
    n_neg_patients: int
    testable: bool
    note: str

    def as_row(self) -> dict:
        return asdict(self)


def _films(n: int) -> str:
    return f"{n} {'film' if n == 1 else 'films'}"


def _patients(n: int) -> str:
    return f"{n} {'patient' if n == 1 else 'patients'}"


def testability(y_true: ArrayLike, groups: ArrayLike | None, min_pos_patients: int = MIN_POS_PATIENTS,
                min_neg_patients: int = MIN_NEG_PATIENTS) -> Testability:
    """Count the films and patients with and without the finding; testable when both sides reach the minimum.

    `groups=None` makes every film its own patient.
    """
    y = np.asarray(y_true).astype(int).ravel()
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    pp, pn = side_patients(y, groups)
    short = []
    if pp < min_pos_patients:
        short.append(f"{_films(n_pos)} with the finding from {_patients(pp)}")
    if pn < min_neg_patients:
        short.append(f"{_films(n_neg)} without it from {_patients(pn)}")
    note = ""
    if short:
        note = (f"not testable: {' and '.join(short)} (needs ≥ {min_pos_patients} patients with and "
                f"≥ {min_neg_patients} without)")
    return Testability(n_pos, pp, n_neg, pn, not short, note)


def format_p(p: float, bound: bool = False, digits: int = 2) -> str:
    """'p = 0.031', 'p ≤ 0.002' for a bound (a bootstrap p at its floor, or its Holm adjustment), 'p n/a'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p n/a"
    p = float(p)
    text = f"{p:.{digits}g}" if p >= 1e-3 else f"{p:.{digits}g}".replace("e-0", "e-")
    return f"p ≤ {text}" if bound else f"p = {text}"
