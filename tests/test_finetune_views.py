"""Augmented views of a film (the fine-tuning recipe) and their cached embeddings."""

from __future__ import annotations

import numpy as np
import torch

from lungprior.segment.finetune.views import ViewSettings, make_view, view_key


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


def test_view_keys_name_the_view_seed_and_settings() -> None:
    assert view_key(0, 5) == ""  # the film itself shares the cache with `lungprior segment`
    assert view_key(1, 0) != view_key(2, 0) and view_key(1, 0) != view_key(1, 1)
    assert view_key(1, 0) != view_key(1, 0, ViewSettings(degrees=3.0))


def test_dataset_has_one_item_per_view_with_its_own_cached_embedding(tmp_path) -> None:
    """Views 0..2 of one film: three items, three cache files; view 0 is the film's own embedding."""
    from PIL import Image

    from lungprior.segment.embeddings import EmbeddingCache
    from lungprior.segment.finetune import LungPromptDataset, check_pairs
    from lungprior.segment.finetune.data import TrainingPair
    from lungprior.segment.registry import create_backend

    mask = two_lungs(64, 64)
    image = np.where(mask, 60, 200).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "im.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "m.png")
    pair = TrainingPair("im", tmp_path / "im.png", tmp_path / "m.png", "train")
    backend = create_backend("litemedsam", None, torch.device("cpu"))
    calls: list[int] = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return torch.full((len(x), 256, 64, 64), float(len(calls)))

    cache = EmbeddingCache(tmp_path / "cache", backend, encoder=encode)
    ok, errors = check_pairs([pair], cache, views=3, seed=0)
    assert ok == [pair] and errors == [] and len(calls) == 3
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 3
    check_pairs([pair], cache, views=3, seed=0)
    assert len(calls) == 3  # cached: not encoded again
    data = LungPromptDataset([pair], backend, cache, views=3, seed=0)
    items = [data[i] for i in range(len(data))]
    assert len(data) == 3 and [float(it["embedding"][0, 0, 0]) for it in items] == [1.0, 2.0, 3.0]
    assert cache.path(pair.image) == cache.path(pair.image, view_key(0, 0))
    assert not torch.equal(items[0]["targets"], items[1]["targets"])  # the view moved the lungs
    assert all(it["valid"].tolist() == [True, True] and it["ignore"].sum() == 0 for it in items)
    assert torch.equal(data[1]["targets"], items[1]["targets"]) and len(calls) == 3
