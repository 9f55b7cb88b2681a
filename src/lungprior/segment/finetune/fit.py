"""`train_model`: the one training loop (Lightning) behind `lungprior finetune` and the cross-validation benchmark.

It trains a backend's network in place on given image–mask pairs, each film seen as `views` augmented views
(view 0 = the film): with a frozen encoder on cached embeddings of every view, otherwise on the views
themselves with the encoder trained. It writes OUT/metrics.csv, OUT/best.pth + best.json (the best epoch by
validation Dice, or the last epoch when no validation pairs are given) and OUT/checkpoints/last.ckpt, from
which a rerun resumes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from lungprior.errors import LungpriorError, one_line
from lungprior.quiet import lightning_quiet
from lungprior.segment.base import SegBackend
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune.callbacks import LastCheckpoint, RunRecorder
from lungprior.segment.finetune.config import FinetuneConfig, device_count
from lungprior.segment.finetune.data import TrainingPair
from lungprior.segment.finetune.dataset import EpochShuffle, LungPromptDataset, collate
from lungprior.segment.finetune.module import LungFinetuneModule


def train_model(
    cfg: FinetuneConfig,
    backend: SegBackend,
    train_pairs: list[TrainingPair],
    val_pairs: list[TrainingPair] | None,
    *,
    cache: EmbeddingCache | None,
    accelerator: str,
    precision: str,
    info: dict[str, Any] | None = None,
    progress: bool = False,
) -> L.Trainer:
    """Train `backend.model` in place with `cfg`'s recipe into the folder `cfg.out`; returns the trainer.

    `cache` given means a frozen image encoder (its embeddings of every view must be cached or are computed
    on first use: see `check_pairs`); None trains the encoder on the views. `val_pairs` None: no validation.
    """
    out = Path(cfg.out)
    freeze = cache is not None
    epochs, views = cfg.budget(accelerator)
    module = LungFinetuneModule(
        backend, cfg.recipe, freeze_encoder=freeze, jitter=(cfg.jitter_in, cfg.jitter_out),
        prior_prompts=cfg.prior_prompts, seed=cfg.seed,
    )
    train_set = LungPromptDataset(train_pairs, backend, cache, views=views, seed=cfg.seed)
    train_loader = DataLoader(
        train_set, batch_size=cfg.batch_size, sampler=EpochShuffle(len(train_set), cfg.seed), collate_fn=collate
    )
    val_loader = None
    if val_pairs:
        val_set = LungPromptDataset(val_pairs, backend, cache, for_eval=True)
        val_loader = DataLoader(val_set, batch_size=1, collate_fn=collate)
    recorder = RunRecorder(out, {**(info or {}), "freeze_encoder": freeze}, validate=val_loader is not None)
    last = out / "checkpoints" / "last.ckpt"
    with quiet_lightning():
        trainer = _trainer(cfg, epochs, accelerator, precision, [recorder, LastCheckpoint(last)], progress)
        resume = str(last) if last.is_file() else None
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume, weights_only=True)
    return trainer


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's informational chatter and the warnings that do not apply to these runs."""
    with lightning_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")  # the frozen encoder
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=r".*but have no `val_dataloader`.*")  # cross-validation folds
        yield


def _trainer(
    cfg: FinetuneConfig, epochs: int, accelerator: str, precision: str, callbacks: list[L.Callback], progress: bool
) -> L.Trainer:
    many = device_count(cfg.devices, accelerator) > 1
    try:
        return L.Trainer(
            max_epochs=epochs,
            accelerator=accelerator,
            devices=cfg.devices,
            # frozen parts and the unused multimask heads get no gradient, which plain DDP rejects
            strategy="ddp_find_unused_parameters_true" if many else "auto",
            precision=precision,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            num_sanity_val_steps=0,
            default_root_dir=str(Path(cfg.out)),
        )
    except Exception as exc:  # Lightning raises MisconfigurationException and others for bad device settings
        raise LungpriorError(f"cannot set up training ({one_line(exc, None)})") from exc
