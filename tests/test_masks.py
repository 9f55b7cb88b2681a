"""Tight, loose and soft masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation
from skimage.morphology import disk

from lungprior.errors import LungpriorError
from lungprior.masks import MaskSpec, apply_prior, convex_hull_per_lung, dilate, prior_weight, tight_mask


def _two_lungs() -> np.ndarray:
    m = np.zeros((80, 80), dtype=bool)
    m[10:70, 8:34] = True
    m[10:70, 46:72] = True
    m[30:40, 15:20] = False  # a hole (e.g. a missed nodule)
    m[60:70, 46:60] = False  # a notch (cardiac)
    m[2:4, 2:4] = True  # a speck of noise
    return m


def test_tight_keeps_two_largest_and_fills_holes() -> None:
    t = tight_mask(_two_lungs())
    assert not t[2:4, 2:4].any()
    assert t[30:40, 15:20].all()
    assert not t[60:70, 46:60].any()  # a notch open to the outside is not a hole


@pytest.mark.parametrize("radius", [1, 3, 6.5])
def test_dilate_matches_disk_dilation(radius: float) -> None:
    m = tight_mask(_two_lungs())
    ref = binary_dilation(m, structure=disk(int(radius)) if radius == int(radius) else None)
    ours = dilate(m, radius)
    if radius == int(radius):
        assert np.array_equal(ours, ref)
    assert ours.sum() > m.sum() and ours[m].all()


def test_loose_radius_in_mm_uses_spacing() -> None:
    m = tight_mask(_two_lungs())
    w_fine = prior_weight(m, MaskSpec("loose", radius_mm=6.0), spacing_mm=2.0)  # 3 px
    assert np.array_equal(w_fine > 0, dilate(m, 3.0))
    with pytest.raises(LungpriorError, match="pixel spacing"):
        prior_weight(m, MaskSpec("loose", radius_mm=6.0), spacing_mm=None)
    assert np.array_equal(prior_weight(m, MaskSpec("loose", radius_px=2), None) > 0, dilate(m, 2))


def test_hull_recovers_notch() -> None:
    t = tight_mask(_two_lungs())
    h = convex_hull_per_lung(t)
    assert h[61:63, 54:59].all() and not t[61:63, 54:59].any()  # part of the notch below the hull's chord
    assert not h[68:70, 46:49].any()  # the notch's far corner lies outside the hull
    assert h[t].all()


def test_soft_weight_and_fill() -> None:
    m = tight_mask(_two_lungs())
    w = prior_weight(m, MaskSpec("soft", alpha=0.25), 1.0)
    assert w.min() == pytest.approx(0.25, abs=1e-6) and w[m].min() == 1.0
    img = np.full(m.shape, 0.8, dtype=np.float32)
    img[~m] = 0.2
    assert apply_prior(img, prior_weight(m, MaskSpec("tight"), 1.0), "zero")[~m].max() == 0
    filled = apply_prior(img, prior_weight(m, MaskSpec("tight"), 1.0), "mean")
    assert filled[~m] == pytest.approx(0.8)


def test_errors_and_keys() -> None:
    with pytest.raises(LungpriorError, match="unknown mask mode"):
        MaskSpec("tigth")
    with pytest.raises(LungpriorError, match="empty lung mask"):
        prior_weight(np.zeros((8, 8), bool), MaskSpec("tight"))
    with pytest.raises(LungpriorError, match="differ in size"):
        apply_prior(np.zeros((4, 4)), np.zeros((5, 5)))
    keys = {MaskSpec("original").key(), MaskSpec("tight").key(), MaskSpec("loose", radius_mm=10).key(),
            MaskSpec("loose", radius_mm=20).key(), MaskSpec("soft", alpha=0.5).key()}
    assert len(keys) == 5
