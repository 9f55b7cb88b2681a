"""`train`: one multi-label classification run with Lightning, resumable from its last checkpoint."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from lungprior.classify import run as runfiles
from lungprior.classify.backbone import check_backbone, create_backbone
from lungprior.classify.cache import CacheInfo
from lungprior.classify.config import TrainConfig
from lungprior.classify.data import ClassifyDataset, Prepared, excluded_counts, make_dataset, pos_weight, prepare
from lungprior.classify.datamodule import ClassifyData
from lungprior.classify.history import RunHistory
from lungprior.classify.memory import PeakRSS
from lungprior.classify.module import per_finding_auroc
from lungprior.classify.prior_loss import make_classifier, needs_double_backward
from lungprior.classify.run import TrainResult
from lungprior.classify.segsource import segmentation_record
from lungprior.classify.syncbn import BatchNormSync
from lungprior.data.atomic import write_json
from lungprior.errors import LungpriorError, one_line
from lungprior.extras import install_hint
from lungprior.labels import FINDINGS
from lungprior.layout import CHECKPOINTS, CONFIG, EXCLUDED, HISTORY, MODEL, SEGMENTATION
from lungprior.quiet import lightning_quiet
from lungprior.ranks import global_rank

log = logging.getLogger("lungprior.classify")


def train(
    cfg: TrainConfig, *, progress: bool = True, summary: bool | None = None, callbacks: Sequence[Callback] = (),
    seg_weights: str | None = None, allow_qc_fail: bool | None = None,
) -> TrainResult:
    """Train (or resume, or return the finished) run described by `cfg` in `cfg.out`.

    Rerunning with the same settings continues from `checkpoints/last.ckpt`; a finished run is returned
    without training; a folder holding a run with other settings raises a `LungpriorError`.
    `summary` prints the model summary (default: with `progress`); `callbacks` are extra Lightning callbacks.
    `seg_weights`: the segmentation checkpoint that made `cfg.masks`, recorded in `segmentation.json`.
    `allow_qc_fail`: keep films whose mask failed `segment`'s QC (default: leave them out, listed in
    `excluded.csv`; None on a resumed run: as it was started).
    Under DDP, `cfg.batch_size` is per process: W processes train as one process with W x batch size would
    (same sample order and augmentation, BatchNorm statistics over the global batch), up to float rounding.
    """
    cfg = cfg.resolved()
    run_dir = Path(cfg.out)
    runfiles.claim_run_dir(run_dir, cfg)
    done = runfiles.finished_result(run_dir, cfg)
    if done is not None:
        log.info("%s: run already finished (%d epochs); not retraining", run_dir, done.epochs_run)
        return done
    check_backbone(cfg.backbone)
    check_loggers(cfg)
    prep = prepare(cfg, progress=progress, allow_qc_fail=allow_qc_fail)
    train_ds = make_dataset(cfg, "train", train=True, prepared=prep)
    val_ds = make_dataset(cfg, "val", train=False, prepared=prep)
    _check_splits(train_ds, val_ds, cfg)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model, report = create_backbone(cfg.backbone, cfg.pretrained, cfg.image_size)
    if global_rank(devices=cfg.devices) == 0:
        write_json(run_dir / CONFIG, cfg.to_dict())
        runfiles.write_excluded(prep.excluded, run_dir)
        _warn_excluded(prep, run_dir)
        write_json(run_dir / SEGMENTATION, segmentation_record(cfg.masks, seg_weights))
        if report is not None:
            write_json(run_dir / "pretrained.json", report.to_dict())
    module = make_classifier(cfg, model, pos_weight(train_ds))
    history = RunHistory()
    # best.ckpt only feeds the exported weights (resuming reads last.ckpt), so it holds no optimizer state
    best_ckpt = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINTS, filename="best", monitor="val_auroc", mode="max", save_top_k=1,
        enable_version_counter=False, auto_insert_metric_name=False, save_weights_only=True,
    )
    # every epoch, improving or not (save_last=True on best_ckpt saves only when val_auroc improves)
    last_ckpt = ModelCheckpoint(
        dirpath=run_dir / CHECKPOINTS, filename="last", monitor=None, save_top_k=1,
        enable_version_counter=False, auto_insert_metric_name=False,
    )
    stopper = EarlyStopping(monitor="val_auroc", mode="max", patience=cfg.patience, check_finite=True)
    summary = progress if summary is None else summary
    all_callbacks = [history, best_ckpt, stopper, _AnnounceProcesses(), *callbacks, last_ckpt]
    with lightning_quiet():  # no accelerator lines or tips on stderr; warnings still show
        trainer = _trainer(cfg, run_dir, all_callbacks, progress, len(train_ds), summary=summary)
    last = run_dir / CHECKPOINTS / "last.ckpt"
    resumed = last.is_file()
    if resumed:  # one line for a corrupt or unsafe file, before Lightning's own loading
        runfiles.load_checkpoint(last, f"delete it to retrain from the start, or delete {run_dir} to start over")
    uses_cuda = trainer.strategy.root_device.type == "cuda"
    if uses_cuda:
        torch.cuda.reset_peak_memory_stats()
    with lightning_quiet(), warnings.catch_warnings(), PeakRSS() as rss:
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")  # resuming
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*is deprecated.*")
        # DDP: val AUROC is computed from predictions gathered over all ranks (the same on each); Lightning's own
        # all_gather still calls a deprecated torch helper
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
        warnings.filterwarnings("ignore", message=".*distributed.nn.functional.all_gather is deprecated.*")
        trainer.fit(
            module, datamodule=ClassifyData(train_ds, val_ds, cfg, cuda=uses_cuda),
            ckpt_path=str(last) if resumed else None, weights_only=True,
        )
    if trainer.interrupted:
        raise LungpriorError(f"{run_dir}: training interrupted; rerun the same command to resume from last.ckpt")
    result = _result(cfg, prep.cache, history, stopper, resumed, uses_cuda, rss)
    if trainer.is_global_zero:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        runfiles.export_weights(Path(best_ckpt.best_model_path or last), run_dir / MODEL, expected)
        runfiles.write_history(history.epochs, run_dir / HISTORY)
        runfiles.write_result(result, run_dir)
    return result


class _AnnounceProcesses(Callback):
    """One stdout line from rank 0 when the process group is up (Lightning's own lines are kept quiet)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            print(f"training with {world} processes ({torch.distributed.get_backend()})", flush=True)


def _warn_excluded(prep: Prepared, run_dir: Path) -> None:
    """One warning per kind: films left out, and QC-failed films kept on request."""
    left, kept = excluded_counts(prep.excluded)["excluded"], excluded_counts(prep.excluded)["kept"]
    where = run_dir / EXCLUDED
    if left:
        log.warning("%s: %d film(s) left out (no usable lung mask, or mask failed QC); see %s", run_dir, left, where)
    if kept:
        log.warning("%s: %d film(s) whose lung mask failed QC kept for training and evaluation (--allow-qc-fail); "
                    "see %s", run_dir, kept, where)


def _check_splits(train_ds: ClassifyDataset, val_ds: ClassifyDataset, cfg: TrainConfig) -> None:
    if len(train_ds) < 2:
        raise LungpriorError(f"{cfg.manifest}: the train split needs at least 2 images, has {len(train_ds)}")
    if len(val_ds) == 0:
        raise LungpriorError(f"{cfg.manifest}: the val split is empty; val_auroc needs validation images")
    fake = np.linspace(0.0, 1.0, len(val_ds))[:, None].repeat(len(FINDINGS), axis=1)
    if all(np.isnan(v) for v in per_finding_auroc(val_ds.labels, fake).values()):
        raise LungpriorError(
            f"{cfg.manifest}: no finding has both positive and negative images in the val split; val_auroc is undefined"
        )


def _trainer(
    cfg: TrainConfig, run_dir: Path, callbacks: list[Callback], progress: bool, n_train: int, *, summary: bool
) -> L.Trainer:
    cuda = cfg.accelerator in ("auto", "gpu") and torch.cuda.is_available()
    precision = cfg.precision if cfg.precision != "auto" else ("16-mixed" if cuda else "32")
    loggers = make_loggers(cfg, run_dir)
    if progress:
        callbacks = [*callbacks, RichProgressBar()]
    try:
        trainer = L.Trainer(
            accelerator=cfg.accelerator,
            devices=int(cfg.devices) if cfg.devices.isdigit() else "auto",
            strategy=cfg.strategy,
            num_nodes=cfg.num_nodes,
            precision=precision,  # type: ignore[arg-type]
            max_epochs=cfg.epochs,
            logger=loggers,
            callbacks=callbacks,
            default_root_dir=run_dir,
            enable_progress_bar=progress,
            enable_model_summary=summary,
            num_sanity_val_steps=0,
            deterministic="warn",
            # used by DDP only: BatchNorm over the global batch (the all-reduce one when double backward is needed)
            plugins=[BatchNormSync(cuda=cuda and not needs_double_backward(cfg))],
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise LungpriorError(f"cannot set up training: {one_line(exc, None)}") from None
    trainer.log_every_n_steps = min(50, max(1, n_train // (cfg.batch_size * trainer.world_size)))  # per process
    for lg in loggers:
        lg.log_hyperparams(cfg.to_dict())
    return trainer


def check_loggers(cfg: TrainConfig) -> None:
    """One clear error when MLflow or W&B is asked for but not installed."""
    for name in cfg.logger_names():
        if name in ("mlflow", "wandb") and importlib.util.find_spec(name) is None:
            raise LungpriorError(f"--logger {name} needs the {name} package: {install_hint(name)}")


def make_loggers(cfg: TrainConfig, run_dir: Path) -> list[Logger]:
    """TensorBoard (`RUN/tensorboard/`), CSV (`RUN/csv/`), and MLflow or Weights & Biases when installed.

    MLflow logs to `$MLFLOW_TRACKING_URI`, else `RUN/mlruns`; W&B to project `lungprior` (`$WANDB_MODE=offline`
    keeps it local, in `RUN/wandb/`).
    """
    check_loggers(cfg)
    loggers: list[Logger] = []
    for name in cfg.logger_names():
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(run_dir, name="tensorboard", default_hp_metric=False))
        elif name == "csv":
            loggers.append(CSVLogger(run_dir, name="csv"))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
            loggers.append(MLFlowLogger(experiment_name="lungprior", run_name=run_dir.name, tracking_uri=uri))
        else:
            from lightning.pytorch.loggers import WandbLogger

            loggers.append(WandbLogger(project="lungprior", name=run_dir.name, save_dir=str(run_dir)))
    return loggers


def _result(
    cfg: TrainConfig, cache: CacheInfo, history: RunHistory, stopper: EarlyStopping, resumed: bool, cuda: bool,
    rss: PeakRSS | None = None,
) -> TrainResult:
    epochs = history.epochs
    best = history.best()
    best_epoch = int(best["epoch"]) if best else -1
    epoch_s = [e["epoch_seconds"] for e in epochs]
    train_s = sum(e["train_seconds"] for e in epochs)
    memory, source = runfiles.peak_memory(cuda, rss)
    return TrainResult(
        run_dir=cfg.out,
        epochs_run=len(epochs),
        best_epoch=best_epoch,
        best_val_auroc=float(best["val_auroc"]) if best else float("nan"),
        val_auroc_per_finding={f: float(best[f"val_auroc_{f}"]) for f in FINDINGS} if best else {},
        seconds_per_epoch=float(np.mean(epoch_s)) if epoch_s else float("nan"),
        seconds_to_best=float(sum(e["epoch_seconds"] for e in epochs if e["epoch"] <= best_epoch)),
        train_images_per_s=sum(e["train_images"] for e in epochs) / train_s if train_s > 0 else float("nan"),
        peak_memory_mb=memory,
        peak_memory_source=source,
        cache_build_seconds=_cache_seconds(cache),
        cache_built_now=bool(cache.built),
        cache_dir=str(cache.path),
        stopped_early=bool(stopper.stopped_epoch > 0),
        resumed=resumed,
    )


def _cache_seconds(cache: CacheInfo) -> float:
    """How long building this cache took (now, or when it was built, from its `done` marker)."""
    if cache.built:
        return float(cache.seconds)
    try:
        return float(json.loads((cache.path / "done").read_text())["build_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")
