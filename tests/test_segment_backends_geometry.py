"""Segmentation preprocessing geometry: resize/pad, box mapping, postprocessing, input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lungprior.errors import LungpriorError
from lungprior.segment import (
    check_boxes,
    check_image,
    postprocess_longest_side,
    postprocess_stretch,
    preprocess_longest_side,
    preprocess_stretch,
)


def _bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=float)


def _rect_image(h: int, w: int, rect: list[int]) -> np.ndarray:
    img = np.full((h, w), 0.2, dtype=np.float32)
    x0, y0, x1, y1 = rect
    img[y0 : y1 + 1, x0 : x1 + 1] = 0.9
    return img


@pytest.mark.parametrize(("h", "w", "rect"), [(200, 300, [60, 40, 179, 119]), (300, 200, [40, 60, 119, 179])])
def test_longest_side_keeps_aspect_and_pads_bottom_right(h: int, w: int, rect: list[int]) -> None:
    tensor, tr = preprocess_longest_side(_rect_image(h, w, rect), 256)
    assert tensor.shape == (3, 256, 256) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[0], tensor[2])
    short = round(min(h, w) * 256 / max(h, w))  # 171
    assert tr.resized_size == ((short, 256) if h < w else (256, short))
    assert tr.scale == (256 / 300, 256 / 300)
    rh, rw = tr.resized_size
    content = tensor[0, :rh, :rw]
    assert content.min().item() == 0.0 and content.max().item() == 1.0
    assert tensor[0, rh:, :].abs().sum().item() == 0.0 and tensor[0, :, rw:].abs().sum().item() == 0.0
    # The bright rectangle lands where the box mapping says (same scale on both axes).
    expected = tr.boxes_to_input([[rect[0], rect[1], rect[2] + 1, rect[3] + 1]])[0]
    found = _bbox(tensor[0].numpy() > 0.5) + np.array([0, 0, 1, 1])
    np.testing.assert_allclose(found, expected, atol=1.0)


def test_stretch_resizes_without_aspect_and_without_sam_normalisation() -> None:
    rect = [60, 40, 179, 119]
    tensor, tr = preprocess_stretch(_rect_image(200, 300, rect), 1024)
    assert tensor.shape == (3, 1024, 1024)
    assert tr.resized_size == (1024, 1024) and tr.scale == (1024 / 300, 1024 / 200)
    assert tensor.min().item() == 0.0 and tensor.max().item() == 1.0  # min-max only, no pixel mean/std
    expected = tr.boxes_to_input([[rect[0], rect[1], rect[2] + 1, rect[3] + 1]])[0]
    found = _bbox(tensor[0].numpy() > 0.5) + np.array([0, 0, 1, 1])
    np.testing.assert_allclose(found, expected, atol=2.0)


def test_box_mapping_round_trips_and_scales() -> None:
    rng = np.random.default_rng(0)
    xy0 = rng.uniform(0, 150, size=(6, 2))
    boxes = np.concatenate([xy0, xy0 + rng.uniform(1, 140, size=(6, 2))], axis=1)
    img = np.zeros((200, 300), dtype=np.float32)
    img[0, 0] = 1.0
    for _, tr in (preprocess_longest_side(img, 256), preprocess_stretch(img, 1024)):
        np.testing.assert_allclose(tr.boxes_to_original(tr.boxes_to_input(boxes)), boxes, rtol=0, atol=1e-9)
    _, lite_tr = preprocess_longest_side(img, 256)
    _, med_tr = preprocess_stretch(img, 1024)
    np.testing.assert_allclose(lite_tr.boxes_to_input([30, 60, 150, 120]), [[25.6, 51.2, 128.0, 102.4]])
    np.testing.assert_allclose(med_tr.boxes_to_input([30, 60, 150, 120]), [[102.4, 307.2, 512.0, 614.4]])


@pytest.mark.parametrize("kind", ["lite", "medsam"])
def test_postprocess_maps_logits_back_to_the_original_box(kind: str) -> None:
    h, w, rect = 200, 300, np.array([[60.0, 40.0, 180.0, 120.0]])
    img = np.zeros((h, w), dtype=np.float32)
    img[0, 0] = 1.0
    if kind == "lite":
        _, tr = preprocess_longest_side(img, 256)
        post = postprocess_longest_side
    else:
        _, tr = preprocess_stretch(img, 1024)
        post = postprocess_stretch
    x0, y0, x1, y1 = np.rint(tr.boxes_to_input(rect)[0] * 256 / tr.input_size).astype(int)
    logits = torch.full((1, 1, 256, 256), -10.0)
    logits[..., y0:y1, x0:x1] = 10.0
    if kind == "lite":
        logits[..., tr.resized_size[0] :, :] = 10.0  # padding: must be cropped away, never reach the output
    probs = post(logits, tr)
    assert probs.shape == (1, h, w) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    found = _bbox(probs[0] > 0.5) + np.array([0, 0, 1, 1])
    np.testing.assert_allclose(found, rect[0], atol=2.0)


def test_bad_images_and_boxes_are_rejected() -> None:
    with pytest.raises(LungpriorError, match=r"image of shape \(4, 5, 3\): expected a non-empty 2-D"):
        check_image(np.zeros((4, 5, 3)))
    with pytest.raises(LungpriorError, match=r"image of shape \(0, 5\)"):
        check_image(np.zeros((0, 5)))
    with pytest.raises(LungpriorError, match="NaN or infinite"):
        check_image(np.array([[0.0, np.nan]]))
    assert check_image(np.ones((4, 5, 1))).shape == (4, 5)
    with pytest.raises(LungpriorError, match=r"boxes of shape \(2, 3\)"):
        check_boxes(np.zeros((2, 3)))
    with pytest.raises(LungpriorError, match=r"box 1 \[5\.0, 5\.0, 1\.0, 9\.0\]: x1 < x0"):
        check_boxes([[0, 0, 4, 4], [5, 5, 1, 9]])
