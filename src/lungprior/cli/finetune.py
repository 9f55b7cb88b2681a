"""`lungprior finetune`: fine-tune LiteMedSAM / MedSAM on lung masks (see `lungprior.segment.finetune`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lungprior.console import plain_console


def finetune_command(
    data: Annotated[Path, typer.Option(help="A segdata folder or a synthetic-benchmark (phantom) folder.")],
    out: Annotated[Path, typer.Option(help="Run folder (created; a rerun with the same settings resumes).")],
    backend: Annotated[str, typer.Option(help="Backend: litemedsam or medsam.")] = "litemedsam",
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Base weights (default: LiteMedSAM's bundled weights; required for medsam)."),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs (default: 12 on a GPU, 6 on the CPU).", show_default=False)
    ] = None,
    views: Annotated[
        int | None,
        typer.Option(
            help="Augmented views per training film, view 1 being the film itself (default: 6 on a GPU, 2 on the "
            "CPU). Views scale, shift, rotate and change gamma and contrast, never flip left and right.",
            show_default=False,
        ),
    ] = None,
    jitter_in: Annotated[float, typer.Option(help="Box sides move inward by up to this fraction of the box.")] = 0.04,
    jitter_out: Annotated[float, typer.Option(help="Box sides move outward by up to this fraction of the box.")] = 0.10,
    prior_prompts: Annotated[
        float,
        typer.Option(help="Fraction of training views prompted with the auto cascade's hemithorax prior boxes (its "
                     "coarse pass) instead of their own jittered lung boxes."),
    ] = 0.25,
    batch_size: Annotated[int, typer.Option(help="Views per batch (each gives one prompt per lung).")] = 8,
    lr: Annotated[
        float | None,
        typer.Option(help="Peak learning rate of AdamW's one-cycle schedule (default: 2e-4 litemedsam, 1e-4 medsam)."),
    ] = None,
    freeze_encoder: Annotated[
        str,
        typer.Option(
            help="auto|yes|no. auto freezes the image encoder on the CPU and trains it on a GPU (at 0.1 x the "
            "learning rate). Frozen, the encoder's embeddings of every view are cached and only the decoder (and "
            "prompt encoder) is trained, because one encoder pass takes seconds per image on a CPU."
        ),
    ] = "auto",
    max_train: Annotated[int | None, typer.Option(help="Use at most this many training images.")] = None,
    replay: Annotated[
        str,
        typer.Option(
            help="auto|none|DIR. Also train on the training films of DIR, a segdata or synthetic-benchmark folder "
            "(rehearsal: the model keeps segmenting those films as before). auto: 16 synthetic films generated "
            "into OUT/replay, unless --data is itself a synthetic benchmark; none: --data alone."
        ),
    ] = "auto",
    replay_max: Annotated[int | None, typer.Option(help="Use at most this many --replay films.")] = None,
    devices: Annotated[str, typer.Option(help="Number of devices, or auto (several GPUs train with DDP).")] = "auto",
    accelerator: Annotated[str, typer.Option(help="auto|cpu|gpu.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto|32|16-mixed|bf16-mixed (auto: 16-mixed on a GPU, 32 on the CPU).")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed: same settings and seed, same result.")] = 0,
) -> None:
    """Fine-tune a box-prompted lung segmenter (one box per lung), keep the best epoch, compare with zero-shot."""
    from lungprior.data.atomic import output_dir
    from lungprior.segment.finetune import FinetuneConfig, finetune

    output_dir(out)

    cfg = FinetuneConfig(
        data=str(data), out=str(out), backend=backend, checkpoint=None if checkpoint is None else str(checkpoint),
        epochs=epochs, views=views, jitter_in=jitter_in, jitter_out=jitter_out, prior_prompts=prior_prompts,
        batch_size=batch_size, lr=lr, freeze_encoder=freeze_encoder, max_train=max_train, replay=replay,
        replay_max=replay_max,
        devices=devices, accelerator=accelerator, precision=precision, seed=seed,
    )
    result = finetune(cfg, progress=True)
    if result.partial:  # another process of a multi-device run; rank 0 prints the summary
        return
    console = plain_console(highlight=False)
    if result.already_finished:
        console.print(f"already finished: {result.out} (not retrained)")
    table = Table(title=f"{cfg.backend} on the test split (HD95 in pixels)")
    for column in ("weights", "Dice", "IoU", "HD95"):
        table.add_column(column, justify="left" if column == "weights" else "right")
    for name, label in (("zero_shot", "zero-shot"), ("finetuned", "fine-tuned")):
        values = result.test.get(name, {})
        table.add_row(label, *(_fmt(values.get(k)) for k in ("dice", "iou", "hd95")))
    console.print(table)
    console.print(f"best epoch: {result.best_epoch} (val Dice {_fmt(result.best_val.get('val_dice'))})")
    console.print(f"image encoder: {'frozen (cached embeddings)' if result.freeze_encoder else 'trained'}")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def register(app: typer.Typer) -> None:
    """Add `finetune` to the app."""
    app.command("finetune")(finetune_command)
