"""benchmarks/lesion_observer.py: the reference observer sees a large finding and fails loudly without lungs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungprior.data.phantom import PhantomConfig, generate_benchmark, parse_prevalence
from lungprior.labels import FINDINGS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lesion_observer.py"


def _load():
    spec = importlib.util.spec_from_file_location("lesion_observer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_observer_detects_edema_and_not_a_finding_that_is_absent_from_the_pixels(tmp_path: Path) -> None:
    obs = _load()
    cfg = PhantomConfig(n=120, size=64, seed=3, conspicuity=2.0, test_fraction=0.4,
                        prevalence=parse_prevalence("Edema=0.4,Mass=0.3"))
    generate_benchmark(cfg, tmp_path / "b", workers=1, progress=False)
    table = obs.observe(tmp_path / "b", [48, 64], n_boot=50)
    assert len(table) == 2 * len(FINDINGS) and set(table["size"]) == {48, 64}
    edema = table[table["finding"] == "Edema"]
    assert (edema["auroc"] > 0.85).all() and (edema["ci_low"] <= edema["auroc"]).all()
    # The same films with shuffled labels: the observer finds nothing (AUROC near chance), so it is not leaking
    manifest_path = tmp_path / "b" / "manifest.csv"
    m = pd.read_csv(manifest_path)
    m["Edema"] = np.random.default_rng(0).permutation(m["Edema"].to_numpy())
    m.to_csv(manifest_path, index=False)
    shuffled = obs.observe(tmp_path / "b", [64], n_boot=50)
    assert abs(float(shuffled.loc[shuffled["finding"] == "Edema", "auroc"].iloc[0]) - 0.5) < 0.2


def test_film_without_lungs_is_an_error() -> None:
    obs = _load()
    with pytest.raises(ValueError, match="lung pixels"):
        obs.film_features(np.random.default_rng(0).random((64, 64)), np.zeros((64, 64), bool), 64)
