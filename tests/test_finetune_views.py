"""Augmented views and the decoder fit used by the real-film recipe (benchmarks/segment_cv.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lungprior.segment.finetune.decoder_fit import FitSettings, Prompts, fit, jitter
from lungprior.segment.finetune.views import make_view
from lungprior.segment.preprocess import preprocess_longest_side


def two_lungs(h: int = 120, w: int = 100) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[20:100, 10:45] = True
    m[22:104, 55:90] = True
    return m


def test_views_are_seeded_keep_laterality_and_view_0_is_the_film() -> None:
    rng = np.random.default_rng(0)
    image, mask = rng.random((120, 100)).astype(np.float32), two_lungs()
    same = make_view(image, mask, 0, image_id="a")
    assert same[0] is image and same[1] is mask
    a = make_view(image, mask, 3, image_id="a", seed=1)
    b = make_view(image, mask, 3, image_id="a", seed=1)
    c = make_view(image, mask, 4, image_id="a", seed=1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and a[0].min() >= 0.0 and a[0].max() <= 1.0
    for k in range(1, 8):
        _, m, _ = make_view(image, mask, k, image_id="x", seed=k)
        cols = np.nonzero(m)[1]
        left_half, right_half = m[:, :50].sum(), m[:, 50:].sum()
        assert cols.size and 0.6 < left_half / right_half < 1.6  # never swapped or lost
        assert abs(m.sum() / mask.sum() - 1) < 0.35


def test_jitter_moves_sides_within_fractions_of_the_box() -> None:
    boxes = np.array([[50.0, 40.0, 150.0, 240.0]])
    rng = np.random.default_rng(0)
    out = np.stack([jitter(boxes, rng, 0.04, 0.10, 256.0)[0] for _ in range(200)])
    w, h = 100.0, 200.0
    assert out[:, 0].min() >= 50 - 0.10 * w - 1e-9 and out[:, 0].max() <= 50 + 0.04 * w + 1e-9
    assert out[:, 3].max() <= 256.0 and out[:, 3].min() >= 240 - 0.04 * h - 1e-9
    assert (out[:, 2] > out[:, 0]).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_decoder_fit_lowers_the_loss_on_one_film() -> None:
    from lungprior.segment.registry import create_backend

    backend = create_backend("litemedsam", None, torch.device("cpu"))
    mask = two_lungs(256, 256)
    image = np.where(mask, 0.2, 0.8).astype(np.float32)
    tensor, transform = preprocess_longest_side(image, 256)
    with torch.no_grad():
        embedding = backend.encode(tensor[None]).to(torch.float16)
    prompts = Prompts.empty()
    prompts.add(0, mask, transform)
    assert prompts.boxes.shape == (2, 4) and prompts.targets.shape == (2, 256, 256)
    prompts.targets[:, 128:] = 0  # a target the base model does not produce: the upper half of each lung
    before = {k: v.clone() for k, v in backend.model.mask_decoder.state_dict().items()}
    losses = fit(backend.model, prompts, FitSettings(epochs=6, batch_size=2, lr=3e-4), seed=0, input_size=256,
                 embeddings=embedding)
    assert len(losses) == 6 and min(losses[-2:]) < losses[0]
    after = backend.model.mask_decoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    encoder_grads = [p.requires_grad for p in backend.model.image_encoder.parameters()]
    assert not any(encoder_grads)  # frozen: only the decoder and prompt encoder learn
