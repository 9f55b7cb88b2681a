"""The torch dataset of lung prompts and the checks run on every pair before training."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from rich.progress import track
from torch.utils.data import Dataset, Sampler

from lungprior.console import plain_console
from lungprior.errors import LungpriorError
from lungprior.segment.base import SegBackend
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.data import MAX_LUNGS, Pair, lung_targets, read_pair


class LungPromptDataset(Dataset):
    """One item per image: up to two lung prompts with their targets, and the image or its cached embedding.

    Item keys: `index`; `boxes` (2, 4) float32 model-input boxes (unjittered) and `valid` (2,) bool (an
    image with one lung component has one valid prompt); `targets` (2, 256, 256) uint8 per-lung masks;
    `embedding` (C, h, w) with a cache, else `image` (3, S, S); `input_masks` (2, S, S) uint8 with
    `augment`; `union` (H, W) bool (the whole ground-truth mask) and `transform` with `for_eval`.
    """

    def __init__(
        self,
        pairs: list[Pair],
        backend: SegBackend,
        cache: EmbeddingCache | None = None,
        *,
        augment: bool = False,
        for_eval: bool = False,
    ) -> None:
        self.pairs = pairs
        self.backend = backend
        self.cache = cache
        self.augment = augment
        self.for_eval = for_eval

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        image, mask = read_pair(pair)
        tensor, transform = self.backend.preprocess(image)
        lungs = lung_targets(mask, transform)
        k = len(lungs.boxes)
        boxes = np.zeros((MAX_LUNGS, 4), dtype=np.float32)
        boxes[:k] = lungs.boxes
        targets = np.zeros((MAX_LUNGS, *lungs.low_res.shape[1:]), dtype=np.uint8)
        targets[:k] = lungs.low_res
        item: dict[str, Any] = {
            "index": index,
            "boxes": torch.from_numpy(boxes),
            "valid": torch.arange(MAX_LUNGS) < k,
            "targets": torch.from_numpy(targets),
        }
        if self.cache is not None:
            item["embedding"] = self.cache.get(pair.image, tensor)[0]
        else:
            item["image"] = tensor
        if self.augment:
            masks = np.zeros((MAX_LUNGS, *lungs.input_masks.shape[1:]), dtype=np.uint8)
            masks[:k] = lungs.input_masks
            item["input_masks"] = torch.from_numpy(masks)
        if self.for_eval:
            item["union"] = torch.from_numpy(mask)
            item["transform"] = transform
        return item


class EpochShuffle(Sampler[int]):
    """A random order that depends only on (seed, epoch): a resumed run sees the orders of an uninterrupted one.

    Lightning calls `set_epoch` before every epoch (and wraps this sampler for DDP).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch, 1]).permutation(self.size)
        return iter(order.tolist())


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape and integers; keep everything else (sizes differ) as lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if all(isinstance(v, torch.Tensor) for v in values) and len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        elif all(isinstance(v, int) for v in values):
            out[key] = torch.tensor(values, dtype=torch.long)
        else:
            out[key] = values
    return out


def check_pairs(
    pairs: list[Pair], cache: EmbeddingCache | None = None, *, progress: bool = False
) -> tuple[list[Pair], list[dict[str, str]]]:
    """Read every pair (and, with a cache, fill it); unusable pairs are recorded and left out."""
    ok: list[Pair] = []
    errors: list[dict[str, str]] = []
    label = "caching image embeddings" if cache is not None else "checking image–mask pairs"
    bar = track(pairs, description=label, disable=not progress, transient=True, console=plain_console(stderr=True))
    for pair in bar:
        try:
            image, _ = read_pair(pair)
            if cache is not None:
                tensor, _ = cache.backend.preprocess(image)
                cache.get(pair.image, tensor)
        except LungpriorError as exc:
            errors.append({"image_id": pair.image_id, "split": pair.split, "error": str(exc)})
            continue
        ok.append(pair)
    return ok, errors
