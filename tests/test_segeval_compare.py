"""benchmarks/segeval_compare.py: paired per-film differences with patients resampled as clusters."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "segeval_compare.py"


def _load():
    spec = importlib.util.spec_from_file_location("segeval_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being defined
    spec.loader.exec_module(module)
    return module


def test_a_shift_is_found_and_patients_widen_the_interval() -> None:
    cmp = _load()
    rng = np.random.default_rng(0)
    b = rng.uniform(0.85, 0.95, 60)
    a = b + 0.01 + rng.normal(0, 0.01, 60)
    r = cmp.paired_difference(a, b, np.arange(60).astype(str), n_resamples=4000)
    assert abs(r.diff - float(np.mean(a - b))) < 1e-12 and r.ci_low > 0 and r.p < 0.01
    assert r.better + r.worse + r.same == 60 and r.n_patients == 60
    se = float(np.std(a - b, ddof=1) / np.sqrt(60))  # independent films: close to the normal interval
    assert abs((r.ci_high - r.ci_low) - 2 * 1.96 * se) < 0.25 * 2 * 1.96 * se
    same = cmp.paired_difference(b, b, np.arange(60).astype(str), n_resamples=1000)
    assert same.diff == 0 and same.p == 1.0 and same.same == 60
    # 12 patients with 5 identical films each: 12 independent differences, not 60, so a wider interval
    d = rng.normal(0.005, 0.02, 12)
    a5, b5 = np.repeat(0.9 + d, 5), np.full(60, 0.9)
    clustered = cmp.paired_difference(a5, b5, np.repeat(np.arange(12), 5).astype(str), n_resamples=4000)
    naive = cmp.paired_difference(a5, b5, np.arange(60).astype(str), n_resamples=4000)
    assert clustered.n_patients == 12
    assert (clustered.ci_high - clustered.ci_low) > 1.8 * (naive.ci_high - naive.ci_low)


def test_load_pairs_films_by_id_and_names_patients(tmp_path: Path) -> None:
    cmp = _load()
    pd.DataFrame({"image_id": ["f1", "f2", "f3"], "path": ["x", "y", "z"],
                  "patient_id": ["p1", "p1", None]}).to_csv(tmp_path / "m.csv", index=False)
    for name, dice in (("a", [0.9, 0.8, 0.7]), ("b", [0.85, 0.8, np.nan])):
        (tmp_path / name).mkdir()
        pd.DataFrame({"image_id": ["f1", "f2", "f3"], "dice": dice}).to_csv(tmp_path / name / "films.csv", index=False)
    df = cmp.load(tmp_path / "m.csv", tmp_path / "a", tmp_path / "b", "dice")
    assert list(df["image_id"]) == ["f1", "f2"] and list(df["patient"]) == ["p1", "p1"]  # f3 unscored in b
    assert list(df["a"]) == [0.9, 0.8] and list(df["b"]) == [0.85, 0.8]
