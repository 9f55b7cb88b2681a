"""The train-split sampler: one seeded order for every world size, so DDP equals single-process training.

Every epoch the whole split is shuffled with `torch.randperm` seeded by (seed + epoch), whatever the number
of processes W. Rank r takes `perm[r::W]` (after dropping the last n mod W items), so with `batch_size` b per
process the k-th batches of all ranks together are `perm[k*W*b : (k+1)*W*b]`: exactly the k-th batch of one
process with batch size W*b. Items are `(index, epoch)` pairs so the dataset seeds each sample's augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler):
    """A shuffling `DistributedSampler` (drop_last) that yields `(index, epoch)`; Lightning calls `set_epoch`.

    `num_replicas=1, rank=0` is the single-process case: the same permutation, all of it.
    """

    def __init__(self, dataset: Sized, *, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True  # type: ignore[arg-type]
        )

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = int(self.epoch)
        for index in super().__iter__():
            yield int(index), epoch

