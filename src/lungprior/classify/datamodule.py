"""The run's data loaders, built once Lightning knows this process's rank and the world size."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from lungprior.classify.config import TrainConfig
from lungprior.classify.data import ClassifyDataset
from lungprior.classify.sampling import EpochSampler


class ClassifyData(L.LightningDataModule):
    """Train loader: `EpochSampler` over the world (W processes x `batch_size` = one process x W*batch_size).

    Val loader: plain, in order (under DDP Lightning gives it a non-shuffling `DistributedSampler`).
    """

    def __init__(self, train_ds: ClassifyDataset, val_ds: ClassifyDataset, cfg: TrainConfig, *, cuda: bool = False):
        super().__init__()
        self.train_ds, self.val_ds, self.cfg, self.cuda = train_ds, val_ds, cfg, cuda

    def train_dataloader(self) -> DataLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = EpochSampler(self.train_ds, num_replicas=world, rank=rank, seed=self.cfg.seed)
        # only full batches (no size-1 batch for BatchNorm), unless one process has less than one batch
        return self._loader(self.train_ds, sampler=sampler, drop_last=len(sampler) >= self.cfg.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ds)

    def _loader(
        self, ds: ClassifyDataset, *, sampler: EpochSampler | None = None, drop_last: bool = False
    ) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.cfg.workers,
            pin_memory=self.cuda,
            persistent_workers=self.cfg.workers > 0,
        )
