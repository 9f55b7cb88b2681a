"""The torch dataset of lung prompts (one item per view of a film) and the checks run on every pair before training."""

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
from lungprior.segment.finetune.data import LOW_RES, MAX_LUNGS, TrainingPair, lung_targets, read_pair
from lungprior.segment.finetune.views import make_view, view_key
from lungprior.segment.infer.prompts import prior_boxes
from lungprior.segment.preprocess import Transform


class LungPromptDataset(Dataset):
    """One item per (image, view): up to two lung prompts with their targets, and the view or its embedding.

    Item `index` i is view `i % views` of pair `i // views` (view 0 is the film; `lungprior.segment.finetune.
    views`). Keys: `index`; `boxes` (2, 4) float32 model-input boxes (unjittered) and `valid` (2,) bool (one
    valid prompt per lung component; none when a view lost the lung); `prior` (2, 4) the auto cascade's
    hemithorax prior boxes of the view in model-input space and `prior_ok` (bool; the view has two lungs);
    `targets` (2, 256, 256) uint8 per-lung masks and `ignore` (256, 256) uint8 (1 = left out of the loss);
    `embedding` (C, h, w) with a cache, else `image` (3, S, S); `union` and `ignore_full` (H, W) bool and
    `transform` with `for_eval` (view 0 only). Targets are computed once per item and kept; with a cache a later
    epoch reads only the embedding file.
    """

    def __init__(
        self,
        pairs: list[TrainingPair],
        backend: SegBackend,
        cache: EmbeddingCache | None = None,
        *,
        views: int = 1,
        seed: int = 0,
        for_eval: bool = False,
    ) -> None:
        self.pairs = pairs
        self.backend = backend
        self.cache = cache
        self.views = 1 if for_eval else max(1, int(views))
        self.seed = seed
        self.for_eval = for_eval
        self._targets: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.pairs) * self.views

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair, view = self.pairs[index // self.views], index % self.views
        variant = view_key(view, self.seed)
        known = self._targets.get(index)
        embedding = self.cache.lookup(pair.image, variant) if self.cache is not None and known else None
        if known is not None and embedding is not None and not self.for_eval:
            return {"index": index, **known, "embedding": embedding[0]}
        image, mask, ignore = read_pair(pair)
        image, mask, ignore = view_of(image, mask, ignore, view, image_id=pair.image_id, seed=self.seed)
        tensor, transform = self.backend.preprocess(image)
        known = known or prompt_targets(mask, ignore, transform)
        self._targets[index] = known
        item: dict[str, Any] = {"index": index, **known}
        if self.cache is not None:
            item["embedding"] = self.cache.get(pair.image, tensor, variant)[0]
        else:
            item["image"] = tensor
        if self.for_eval:
            item["union"] = torch.from_numpy(mask)
            item["ignore_full"] = torch.from_numpy(ignore)
            item["transform"] = transform
        return item


def view_of(
    image: np.ndarray, mask: np.ndarray, ignore: np.ndarray, view: int, *, image_id: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """View `view` of a film, its lung mask and its ignore mask (view 0: unchanged)."""
    out, lung, extra = make_view(image, mask, view, image_id=image_id, seed=seed, extra=ignore)
    return out, lung, (np.zeros_like(lung) if extra is None else extra)


def prompt_targets(mask: np.ndarray, ignore: np.ndarray, transform: Transform) -> dict[str, torch.Tensor]:
    """`boxes`, `valid`, `targets`, `ignore`, `prior` and `prior_ok` of one view (no valid prompt when its lung
    mask is empty)."""
    boxes = np.zeros((MAX_LUNGS, 4), dtype=np.float32)
    targets = np.zeros((MAX_LUNGS, LOW_RES, LOW_RES), dtype=np.uint8)
    plane = np.zeros((LOW_RES, LOW_RES), dtype=np.uint8)
    k = 0
    if mask.any():
        lungs = lung_targets(mask, transform, ignore)
        k = len(lungs.boxes)
        boxes[:k], targets[:k], plane = lungs.boxes, lungs.low_res, lungs.ignore
    return {
        "boxes": torch.from_numpy(boxes),
        "valid": torch.arange(MAX_LUNGS) < k,
        "targets": torch.from_numpy(targets),
        "ignore": torch.from_numpy(plane),
        "prior": torch.from_numpy(transform.boxes_to_input(prior_boxes(mask.shape)).astype(np.float32)),
        "prior_ok": torch.tensor(k == MAX_LUNGS),
    }


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
    pairs: list[TrainingPair],
    cache: EmbeddingCache | None = None,
    *,
    views: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> tuple[list[TrainingPair], list[dict[str, str]]]:
    """Read every pair (and, with a cache, encode its `views` views); unusable pairs are recorded and left out."""
    ok: list[TrainingPair] = []
    errors: list[dict[str, str]] = []
    label = "caching image embeddings" if cache is not None else "checking image–mask pairs"
    bar = track(pairs, description=label, disable=not progress, transient=True, console=plain_console(stderr=True))
    for pair in bar:
        try:
            image, mask, ignore = read_pair(pair)
            for view in range(views if cache is not None else 0):
                if cache.lookup(pair.image, view_key(view, seed)) is not None:
                    continue
                view_image, _, _ = view_of(image, mask, ignore, view, image_id=pair.image_id, seed=seed)
                tensor, _ = cache.backend.preprocess(view_image)
                cache.get(pair.image, tensor, view_key(view, seed))
        except LungpriorError as exc:
            errors.append({"image_id": pair.image_id, "split": pair.split, "error": str(exc)})
            continue
        ok.append(pair)
    return ok, errors
