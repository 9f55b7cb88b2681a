"""Patient-level splitting: every image of a patient lands in the same split.

The order of patients comes from a keyed hash (SHA-256 of seed, salt and patient id), so the result depends
only on the set of patients and the seed: not on the input order, the Python hash seed or the numpy version.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from lungprior.errors import LungpriorError, ManifestError

_TOLERANCE = 1e-6


def seeded_order(items: Iterable[str], seed: int, salt: str = "") -> list[str]:
    """The distinct items in a pseudo-random order fixed by `seed` (and `salt`, to decorrelate uses)."""

    def key(item: str) -> bytes:
        return hashlib.sha256(f"{salt}\x00{seed}\x00{item}".encode()).digest()

    return sorted({str(item) for item in items}, key=key)


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Split `n` items into whole counts proportional to `fractions` (largest remainder; they sum to `n`)."""
    total = _check_fractions(fractions)
    raw = {name: round(float(f) / total * n, 9) for name, f in fractions.items()}
    counts = {name: math.floor(value) for name, value in raw.items()}
    left = n - sum(counts.values())
    by_remainder = sorted(raw, key=lambda name: raw[name] - counts[name], reverse=True)
    for name in by_remainder[:left]:
        counts[name] += 1
    return counts


def patient_split(patient_ids: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign each distinct patient to a split; `fractions` are fractions of patients and must sum to 1.

    E.g. ``patient_split(ids, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=0)``. Patients are ordered by
    `seeded_order` and cut into consecutive blocks of `split_counts` patients. Same seed, same result.
    """
    order = seeded_order(patient_ids, seed, salt="patient_split")
    counts = split_counts(len(order), fractions)
    assignment: dict[str, str] = {}
    start = 0
    for name, count in counts.items():
        for patient in order[start : start + count]:
            assignment[patient] = name
        start += count
    return assignment


def check_patient_disjoint(df: pd.DataFrame) -> None:
    """Raise `ManifestError` naming a patient whose images are in more than one split."""
    missing = [c for c in ("patient_id", "split") if c not in df.columns]
    if missing:
        raise ManifestError(f"cannot check patient splits: missing column(s) {', '.join(missing)}")
    per_patient = df.groupby("patient_id", sort=True)["split"].nunique()
    shared = per_patient[per_patient > 1]
    if shared.empty:
        return
    patient = shared.index[0]
    splits = sorted(df.loc[df["patient_id"] == patient, "split"].astype(str).unique())
    raise ManifestError(
        f"patient {patient} is in more than one split ({', '.join(splits)}); "
        f"{len(shared)} patient(s) are shared between splits"
    )


def _check_fractions(fractions: Mapping[str, float]) -> float:
    """Validate split fractions; return their sum."""
    if not fractions:
        raise LungpriorError("split fractions: at least one split is needed")
    for name, value in fractions.items():
        if not isinstance(name, str) or not name:
            raise LungpriorError(f"split fractions: split names must be non-empty strings, got {name!r}")
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise LungpriorError(f"split fractions: {name} must be a finite number >= 0, got {value!r}")
    total = sum(float(v) for v in fractions.values())
    if abs(total - 1.0) > _TOLERANCE:
        raise LungpriorError(f"split fractions must sum to 1, got {total:g} ({dict(fractions)})")
    return total
