"""The conspicuity dial: lesion contrast only (same films otherwise, same labels, markers and lesion extents)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS


def _make(out: Path, conspicuity: float) -> Path:
    generate_benchmark(PhantomConfig(n=16, size=96, seed=4, bias=0.5, conspicuity=conspicuity,
                                     prevalence=dict.fromkeys(FINDINGS, 0.3)), out, workers=1,
                       progress=False)
    return out


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_conspicuity_raises_lesion_contrast_and_nothing_else(tmp_path: Path) -> None:
    base, easy = _make(tmp_path / "c1", 1.0), _make(tmp_path / "c2", 2.0)
    m1, m2 = (pd.read_csv(d / "manifest.csv", dtype={"image_id": str}) for d in (base, easy))
    pd.testing.assert_frame_equal(m1, m2)  # labels, splits, patients
    assert (base / "markers.csv").read_bytes() == (easy / "markers.csv").read_bytes()
    assert "conspicuity" not in json.loads((base / "phantom.json").read_text())  # recorded only when not 1
    assert json.loads((easy / "phantom.json").read_text())["conspicuity"] == 2.0
    gains, outside = [], []
    for image_id in m1["image_id"]:
        lesion = _png(base / "lesions" / f"{image_id}.png")
        assert np.array_equal(lesion, _png(easy / "lesions" / f"{image_id}.png"))  # same extents
        assert np.array_equal(_png(base / "masks" / f"{image_id}.png"), _png(easy / "masks" / f"{image_id}.png"))
        diff = _png(easy / "images" / f"{image_id}.png") - _png(base / "images" / f"{image_id}.png")
        if lesion.any():
            gains.append(diff[lesion > 0].mean())
        outside.append(np.abs(diff[lesion == 0]).mean())
    assert len(gains) >= 5 and min(gains) > 0  # every lesion is denser (brighter) at twice the contrast
    assert np.mean(gains) > 5 * np.mean(outside)  # the change sits on the lesions


@pytest.mark.parametrize("value", [0.1, 5.0])
def test_conspicuity_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(LungpriorError, match="conspicuity"):
        PhantomConfig(conspicuity=value)


def test_finding_conspicuity_scales_only_the_named_finding() -> None:
    from lungprior.data.phantom.plan import plan_benchmark

    kw = dict(n=60, size=64, seed=5, conspicuity=2.0, prevalence=dict.fromkeys(FINDINGS, 0.5))
    base = plan_benchmark(PhantomConfig(**kw))
    nod4 = plan_benchmark(PhantomConfig(**kw, finding_conspicuity={"Nodule": 4.0}))
    ratios: dict[str, list[float]] = {k: [] for k in FINDINGS}
    for a, b in zip(base, nod4, strict=True):
        assert a.labels == b.labels and a.markers == b.markers
        for la, lb in zip(a.lesions, b.lesions, strict=True):
            assert la.kind == lb.kind
            ratios[la.kind].append(lb.amplitude / la.amplitude)
    assert ratios["Nodule"] and np.allclose(ratios["Nodule"], 2.0)  # 4 instead of the global 2
    assert all(np.allclose(ratios[k], 1.0) for k in FINDINGS if k != "Nodule")
    assert PhantomConfig(**kw, finding_conspicuity={"Nodule": 4.0}).to_dict()["finding_conspicuity"] == {"Nodule": 4.0}
    assert "finding_conspicuity" not in PhantomConfig(**kw).to_dict()  # recorded only when set


@pytest.mark.parametrize(("dial", "match"), [({"Nodule": 5.0}, "conspicuity of Nodule"),
                                             ({"Cardiomegaly": 2.0}, "unknown finding")])
def test_finding_conspicuity_bad_values_are_refused(dial: dict, match: str) -> None:
    with pytest.raises(LungpriorError, match=match):
        PhantomConfig(finding_conspicuity=dial)
