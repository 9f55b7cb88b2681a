"""Tests for patient-level splitting."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lungprior.data.splits import check_patient_disjoint, patient_split, seeded_order, split_counts
from lungprior.errors import LungpriorError, ManifestError

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def test_patient_split_is_deterministic_and_order_independent() -> None:
    ids = [f"p{i}" for i in range(500)]
    first = patient_split(ids, FRACTIONS, seed=3)
    again = patient_split(list(reversed(ids)) + ids[:50], FRACTIONS, seed=3)  # other order, duplicates
    assert first == again
    assert set(first) == set(ids)


def test_patient_split_depends_on_seed() -> None:
    ids = [f"p{i}" for i in range(500)]
    a, b = patient_split(ids, FRACTIONS, seed=0), patient_split(ids, FRACTIONS, seed=1)
    assert a != b
    assert sorted(a.values()) == sorted(b.values())  # same counts, other patients


def test_patient_split_pinned_result() -> None:
    """Guards against silent changes of the hashing scheme (same seed, same result across versions)."""
    got = patient_split([str(i) for i in range(10)], {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert got == {
        "0": "train", "1": "train", "2": "val", "3": "test", "4": "train",
        "5": "val", "6": "train", "7": "train", "8": "test", "9": "train",
    }


def test_patient_split_counts_are_exact_fractions_of_patients() -> None:
    got = patient_split([str(i) for i in range(1000)], FRACTIONS, seed=0)
    counts = pd.Series(got).value_counts().to_dict()
    assert counts == {"train": 700, "val": 100, "test": 200}


def test_zero_fraction_gets_no_patient() -> None:
    got = patient_split([str(i) for i in range(20)], {"train": 0.8, "val": 0.0, "test": 0.2}, seed=5)
    assert "val" not in set(got.values())
    assert sum(v == "test" for v in got.values()) == 4


def test_empty_patient_list() -> None:
    assert patient_split([], FRACTIONS, seed=0) == {}


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 99, 1001])
@pytest.mark.parametrize("fractions", [FRACTIONS, {"a": 0.5, "b": 0.5}, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}])
def test_split_counts_sum_to_n_and_stay_within_one(n: int, fractions: dict[str, float]) -> None:
    counts = split_counts(n, fractions)
    assert sum(counts.values()) == n
    for name, f in fractions.items():
        assert math.floor(f * n + 1e-9) <= counts[name] <= math.ceil(f * n - 1e-9)


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.7, "val": 0.1}, "sum to 1"),
        ({"train": 1.2, "val": -0.2}, "val must be a finite number >= 0"),
        ({"train": float("nan"), "val": 1.0}, "train must be a finite number >= 0"),
        ({}, "at least one split"),
        ({"": 1.0}, "non-empty strings"),
    ],
)
def test_bad_fractions_raise(fractions: dict[str, float], message: str) -> None:
    with pytest.raises(LungpriorError, match=message):
        patient_split(["a", "b"], fractions, seed=0)


def test_seeded_order_is_a_seeded_permutation() -> None:
    items = [str(i) for i in range(50)]
    order = seeded_order(items, 4)
    assert sorted(order) == sorted(items)
    assert order == seeded_order(reversed(items), 4)
    assert order != seeded_order(items, 5)
    assert order != seeded_order(items, 4, salt="other")


def test_check_patient_disjoint_passes_on_disjoint_splits() -> None:
    df = pd.DataFrame({"patient_id": ["1", "1", "2", "3"], "split": ["train", "train", "val", "test"]})
    check_patient_disjoint(df)


def test_check_patient_disjoint_names_shared_patient() -> None:
    df = pd.DataFrame(
        {"patient_id": ["1", "1", "22", "22", "3"], "split": ["train", "train", "train", "test", "val"]}
    )
    with pytest.raises(ManifestError, match=r"^patient 22 is in more than one split \(test, train\); 1 patient"):
        check_patient_disjoint(df)


def test_check_patient_disjoint_needs_columns() -> None:
    with pytest.raises(ManifestError, match="missing column"):
        check_patient_disjoint(pd.DataFrame({"patient_id": ["1"]}))
