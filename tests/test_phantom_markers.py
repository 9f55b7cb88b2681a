"""Shortcut marker placement: "mixed" keeps two markers near the lungs, "far" moves all beyond a 20 mm mask."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig
from lungprior.data.phantom.plan import plan_benchmark
from lungprior.data.phantom.render import render_film
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS


def _marker_distances_mm(placement: str, films: int = 6) -> dict[str, float]:
    """Nearest pixel each marker changes, in mm from the lungs, minimum over `films` films."""
    cfg = PhantomConfig(n=films, size=256, seed=1, markers=placement)
    out = dict.fromkeys(FINDINGS, np.inf)
    for plan in plan_benchmark(cfg)[:films]:
        img_off, mask, _ = render_film(dataclasses.replace(plan, markers=dict.fromkeys(FINDINGS, 0)), 256)
        dist = distance_transform_edt(mask == 0) * cfg.pixel_spacing_mm
        for k in FINDINGS:
            img_on, mask_on, _ = render_film(dataclasses.replace(plan, markers={j: int(j == k) for j in FINDINGS}), 256)
            assert np.array_equal(mask, mask_on)
            changed = img_on != img_off
            assert changed.sum() > 20, (placement, k)
            out[k] = min(out[k], float(dist[changed].min()))
    return out


def test_far_placement_puts_every_marker_beyond_a_20mm_loose_mask() -> None:
    mixed, far = _marker_distances_mm("mixed"), _marker_distances_mm("far")
    assert mixed["Pneumonia"] < 20 and min(far.values()) > 22
    for k in ("Mass", "Nodule", "Edema"):  # the far markers do not move
        assert far[k] == mixed[k]


def test_placement_changes_marker_pixels_only_and_is_recorded() -> None:
    plan_m = plan_benchmark(PhantomConfig(n=3, size=96, seed=2))[0]
    plan_f = plan_benchmark(PhantomConfig(n=3, size=96, seed=2, markers="far"))[0]
    assert dataclasses.replace(plan_f, marker_placement="mixed") == plan_m
    none = dict.fromkeys(FINDINGS, 0)
    a, b = (render_film(dataclasses.replace(p, markers=none), 96)[0] for p in (plan_m, plan_f))
    assert np.array_equal(a, b)  # without markers the films are identical
    assert "markers" not in PhantomConfig().to_dict()  # default placement: recorded settings unchanged
    assert PhantomConfig(markers="far").to_dict()["markers"] == "far"


def test_bad_placement_is_refused(tmp_path) -> None:
    with pytest.raises(LungpriorError, match="--markers"):
        PhantomConfig(markers="near")
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "b"), "--n", "4", "--size", "64",
                                      "--markers", "outside"])
    assert result.exit_code != 0 and "--markers" in result.output
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "c"), "--n", "4", "--size", "64",
                                      "--finding-conspicuity", "Nodule:4"])
    assert result.exit_code != 0 and "--finding-conspicuity" in result.output
