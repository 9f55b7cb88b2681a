"""The phantom's outside-context dial: off by default, independent of the shortcut dial, measured shares."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.data.phantom.context import context_shares
from lungprior.data.phantom.plan import plan_benchmark
from lungprior.data.phantom.render import render_film
from lungprior.errors import LungpriorError

CFG = PhantomConfig(n=160, size=128, seed=2, bias=0.9)


def test_default_records_no_context_and_validates() -> None:
    assert "context" not in CFG.to_dict()
    assert replace(CFG, context=0.5).to_dict()["context"] == 0.5
    with pytest.raises(LungpriorError, match="context"):
        PhantomConfig(context=1.5)


def test_context_changes_findings_not_labels_markers_or_normal_films() -> None:
    base, ctx = plan_benchmark(CFG), plan_benchmark(replace(CFG, context=1.0))
    assert [p.labels for p in base] == [p.labels for p in ctx]
    assert [p.markers for p in base] == [p.markers for p in ctx]  # the shortcut dial is untouched
    normal = next(i for i, p in enumerate(base) if not p.lesions)
    np.testing.assert_array_equal(render_film(base[normal], 128)[0], render_film(ctx[normal], 128)[0])
    edema = next(i for i, p in enumerate(base) if [les.kind for les in p.lesions] == ["Edema"])
    assert not np.array_equal(render_film(base[edema], 128)[0], render_film(ctx[edema], 128)[0])


def test_shares_outside_the_lungs_follow_the_dial() -> None:
    shares = {c: context_shares(replace(CFG, context=c), max_films=12).set_index("finding") for c in (0.0, 0.5, 1.0)}
    for finding in ("Edema", "Mass", "Pneumonia"):
        values = [shares[c].loc[finding, "signal_outside"] for c in (0.0, 0.5, 1.0)]
        assert values[0] < values[1] < values[2], finding
    for finding in ("Edema", "Mass", "Pneumonia"):  # at c = 1 the in-lung signal is gone: a tight mask sees none
        assert shares[1.0].loc[finding, "signal_outside"] > 0.9, finding
    for finding in ("Nodule", "Fibrosis"):  # intrapulmonary controls
        assert shares[1.0].loc[finding, "signal_outside"] < 0.02
    row = shares[1.0].loc["Edema"]
    assert row["signal_outside_within_5mm"] <= row["signal_outside_within_10mm"] <= row[
        "signal_outside_within_20mm"] <= row["signal_outside"] + 1e-9


def test_context_dial_version_is_recorded_only_with_context() -> None:
    assert "context_model" not in CFG.to_dict()  # benchmarks without context keep their cached data
    assert replace(CFG, context=1.0).to_dict()["context_model"] == 2


def test_generate_records_context(tmp_path: Path) -> None:
    generate_benchmark(replace(CFG, n=6, context=0.5), tmp_path, workers=1, progress=False)
    assert json.loads((tmp_path / "phantom.json").read_text())["context"] == 0.5
