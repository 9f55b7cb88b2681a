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
