"""`lungprior segment`: prompt-free lung segmentation of a manifest (see `lungprior.segment.infer`)."""

from __future__ import annotations

from pathlib import Path

import typer

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.data.lock import folder_lock
from lungprior.errors import LungpriorError

#: For the help text only, which must not import the model code (`tests/test_cli_conventions.py` keeps these in step
#: with `lungprior.segment.infer.ENGINES` and `lungprior.segment.list_backends()`).
ENGINE_NAMES = "auto, torch, onnx"
BACKEND_NAMES = "litemedsam, medsam"


def segment_command(
    out: Path = typer.Option(..., "--out", help="Run folder: masks/, qc.csv, errors.csv (a rerun resumes)."),
    manifest: Path = typer.Option(None, "--manifest", help="Manifest CSV of the images to segment."),
    backend: str = typer.Option("litemedsam", "--backend", help=f"Segmentation backend: {BACKEND_NAMES}."),
    weights: Path = typer.Option(None, "--weights", help="Fine-tuned checkpoint (default: the backend's own weights)."),
    prompt: str = typer.Option(
        "auto", "--prompt", help="auto (self-prompting cascade), whole (one whole-image box) or a CSV of boxes "
        "with columns image_id, x0, y0, x1, y1 in original pixels."
    ),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per encoder batch."),
    shard: str = typer.Option(
        None, "--shard", help="Process rows i, i+n, ... of the manifest ('i/n'); default: RANK/WORLD_SIZE if set."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (cuda uses LOCAL_RANK under torchrun)."),
    engine: str = typer.Option(
        "auto", "--engine",
        help=f"Inference engine: {ENGINE_NAMES} (auto: onnx for litemedsam on the CPU, else torch).",
    ),
    embedding_cache: Path = typer.Option(
        None, "--embedding-cache",
        help="Reuse encoder embeddings from this folder (a frozen-encoder `lungprior finetune` run's cache/).",
    ),
    merge: bool = typer.Option(False, "--merge", help="Only merge the shards' qc/errors files in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment the lungs of every image in a manifest without prompts, with QC, resume and sharding."""
    from lungprior.segment.infer import merge_shards, segment_manifest

    console = plain_console(highlight=False, soft_wrap=True)
    output_dir(out)
    if merge:
        with folder_lock(out, "segment"):
            qc, errors = merge_shards(out)
        console.print(f"merged: {qc} and {errors}")
        return
    if manifest is None:
        raise LungpriorError("--manifest is required (or use --merge --out DIR)")
    result = segment_manifest(
        manifest, out, backend=backend, weights=weights, prompt=prompt, batch_size=batch_size, shard=shard,
        device=device, progress=progress, engine=engine, embedding_cache=embedding_cache,
    )
    where = f" (shard {result.shard[0]}/{result.shard[1]})" if result.shard else ""
    why = ", ".join(f"{name} {n}" for name, n in sorted(result.flag_reasons.items(), key=lambda kv: -kv[1]))
    console.print(f"images{where}: {result.total}  segmented: {result.done}  skipped (done before): "
                  f"{result.skipped}  failed: {result.failed}  QC flagged: {result.qc_flagged}"
                  + (f" ({why})" if why else ""))
    if result.done:
        console.print(f"engine: {result.engine}  {result.images_per_s:.2f} images/s")
    from lungprior.segment.weights import BUNDLED_WEIGHTS_NOTE, made_by_bundled_weights

    if made_by_bundled_weights(result.settings):
        console.print(f"note: {BUNDLED_WEIGHTS_NOTE}")
    console.print(f"masks: {result.masks_dir}")
    console.print(f"qc: {result.qc_path}{'  (shards merged)' if result.merged else ''}")
    console.print(f"errors: {result.errors_path}")


def register(app: typer.Typer) -> None:
    """Add `segment` to the app."""
    app.command("segment")(segment_command)
