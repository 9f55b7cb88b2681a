"""`lungprior train`: train a multi-label classifier under one spatial prior (original, tight, loose, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from lungprior.classify.config import TrainConfig as DEFAULTS  # every option's default is TrainConfig's
from lungprior.console import plain_console
from lungprior.labels import FINDINGS

if TYPE_CHECKING:
    from lungprior.classify import TrainResult


def train_command(
    manifest: Path = typer.Option(..., "--manifest", help="Classification manifest (NIH format)."),
    out: Path = typer.Option(..., "--out", help="Run folder; rerunning the same command resumes the run there."),
    mode: str = typer.Option(
        DEFAULTS.mode, "--mode",
        help="Spatial prior: original, tight, loose, soft, nolung (lungs removed), bbox (each lung's box), crop "
        "(both lungs' box, resized) or prior-loss (original pixels, attention outside the loose mask penalised).",
    ),
    masks: Path = typer.Option(
        None, "--masks",
        help="A `lungprior segment` output folder or its masks/ folder of <image_id>.png (default: masks/ beside the "
        "manifest).",
    ),
    radius_mm: float = typer.Option(
        None, "--radius-mm",
        help="Loose / prior-loss: dilation radius in mm; bbox / crop: box margin; nolung: remove loose, not tight "
        "(default 10, none for nolung).",
    ),
    radius_px: float = typer.Option(None, "--radius-px", help="Loose mask: radius in pixels when spacing is unknown."),
    hull: bool = typer.Option(DEFAULTS.hull, "--hull", help="Loose mask: convex hull of each lung before dilation."),
    alpha: float = typer.Option(DEFAULTS.alpha, "--alpha", help="Soft mask: weight kept outside the lungs, in [0, 1]."),
    fill: str = typer.Option(DEFAULTS.fill, "--fill", help="What replaces masked-out pixels: zero or mean."),
    prior_weight: float = typer.Option(
        DEFAULTS.prior_weight, "--prior-weight",
        help="prior-loss: weight of the share of input-gradient energy outside the mask.",
    ),
    backbone: str = typer.Option(
        DEFAULTS.backbone, "--backbone", help="timm model name: resnet50, densenet121, efficientnet_b0, ..."
    ),
    image_size: int = typer.Option(
        DEFAULTS.image_size, "--image-size", help="Input size in pixels (images are resized to S x S)."
    ),
    epochs: int = typer.Option(DEFAULTS.epochs, "--epochs", help="Maximum number of epochs."),
    batch_size: int = typer.Option(
        DEFAULTS.batch_size, "--batch-size",
        help="Images per batch and process. DDP with W processes (devices x nodes) trains as one process with "
        "a batch of W x this would: same images per step, same augmentation, BatchNorm over the global batch.",
    ),
    lr: float = typer.Option(DEFAULTS.lr, "--lr", help="AdamW learning rate (cosine decay over the epochs)."),
    weight_decay: float = typer.Option(DEFAULTS.weight_decay, "--weight-decay", help="AdamW weight decay."),
    patience: int = typer.Option(
        DEFAULTS.patience, "--patience", help="Early stopping: epochs without a better val AUROC."
    ),
    pretrained: str = typer.Option(
        DEFAULTS.pretrained, "--pretrained", help="Initial weights: none, imagenet (timm) or PATH to a state dict file."
    ),
    devices: str = typer.Option(DEFAULTS.devices, "--devices", help="Number of devices, or auto."),
    accelerator: str = typer.Option(DEFAULTS.accelerator, "--accelerator", help="auto, cpu or gpu."),
    strategy: str = typer.Option(DEFAULTS.strategy, "--strategy", help="auto or ddp."),
    num_nodes: int = typer.Option(DEFAULTS.num_nodes, "--num-nodes", help="Number of machines."),
    precision: str = typer.Option(
        DEFAULTS.precision, "--precision", help="auto (16-mixed on CUDA, 32 otherwise), 32, 16-mixed or bf16-mixed."
    ),
    workers: int = typer.Option(DEFAULTS.workers, "--workers", help="DataLoader worker processes."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Random seed: same settings and seed give the same run."),
    limit_train: int = typer.Option(None, "--limit-train", help="Use a seeded random subset of N train images."),
    cache: Path = typer.Option(
        None, "--cache", help="Input cache folder (default: .lungprior-cache beside the manifest)."
    ),
    allow_qc_fail: bool = typer.Option(
        False, "--allow-qc-fail",
        help="Keep films whose lung mask failed segment's QC (qc.csv beside --masks); default: leave them out.",
    ),
    logger: list[str] = typer.Option(
        None, "--logger", help="tensorboard, csv, mlflow or wandb; repeat for several (default: tensorboard and csv)."
    ),
) -> None:
    """Train a multi-label CNN on the five findings; writes weights, logs and efficiency.json to --out."""
    from lungprior.classify import TrainConfig, train  # torch and Lightning load only when training
    from lungprior.data.atomic import output_dir
    from lungprior.layout import resolve_masks_dir
    from lungprior.ranks import global_rank

    masks_dir = str(resolve_masks_dir(masks)) if masks else None
    cfg = TrainConfig(
        manifest=str(manifest), out=str(out), mode=mode, masks=masks_dir, radius_mm=radius_mm,
        radius_px=radius_px, hull=hull, alpha=alpha, fill=fill, prior_weight=prior_weight, backbone=backbone,
        image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
        pretrained=pretrained, devices=devices, accelerator=accelerator, strategy=strategy, num_nodes=num_nodes,
        precision=precision, workers=workers, seed=seed, limit_train=limit_train, cache=str(cache) if cache else None,
        loggers=",".join(logger) if logger else "csv,tensorboard",
    )
    output_dir(out)
    result = train(cfg, allow_qc_fail=allow_qc_fail or None)
    if global_rank(devices=cfg.devices) != 0:  # one summary per run, not one per process
        return
    state = "finished (resumed)" if result.resumed else "finished"
    state = "already finished" if result.already_finished else state
    typer.echo(f"run {state}: {result.run_dir}")
    typer.echo(excluded_line(result.run_dir))
    plain_console().print(summary_table(result))
    from lungprior.report.run_warnings import print_warnings, run_warnings

    print_warnings(typer.echo, run_warnings(result.run_dir))


def excluded_line(run_dir: Path) -> str:
    """How many films the run left out (and why) or kept although their mask failed QC, from its excluded.csv."""
    import pandas as pd

    from lungprior.classify.data import excluded_counts
    from lungprior.layout import EXCLUDED

    path = Path(run_dir) / EXCLUDED
    if not path.is_file():
        return "films left out: 0"
    n = excluded_counts(pd.read_csv(path, dtype=str, keep_default_na=False))
    line = f"films left out: {n['excluded']} (lung mask failed QC: {n['qc_failed']}; see {path})"
    return line + (f"; kept although QC failed (--allow-qc-fail): {n['kept']}" if n["kept"] else "")


def summary_table(result: TrainResult) -> Table:
    """The run's outcome and cost as a small table."""
    table = Table(title="training run", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("epochs run", str(result.epochs_run))
    table.add_row("best epoch", str(result.best_epoch))
    defined = sum(v is not None and v == v for v in result.val_auroc_per_finding.values())
    table.add_row(f"best val AUROC (macro over {defined} of {len(FINDINGS)})", f"{result.best_val_auroc:.4f}")
    for name in FINDINGS:
        value = result.val_auroc_per_finding.get(name)
        table.add_row(f"  {name}", "-" if value is None else f"{value:.4f}")
    table.add_row("seconds / epoch", f"{result.seconds_per_epoch:.1f}")
    table.add_row("seconds to best", f"{result.seconds_to_best:.1f}")
    table.add_row("train images / s", f"{result.train_images_per_s:.1f}")
    table.add_row(f"peak memory MiB ({result.peak_memory_source})", f"{result.peak_memory_mb:.0f}")
    table.add_row("cache build seconds", f"{result.cache_build_seconds:.1f}")
    return table


def register(app: typer.Typer) -> None:
    """Add `train` to the app."""
    app.command("train")(train_command)
