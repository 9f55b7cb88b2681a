"""`lungprior predict`: score new films (files, folders, DICOM, a manifest) with a finished run."""

from __future__ import annotations

from pathlib import Path

import typer


def predict_command(
    inputs: list[Path] = typer.Argument(..., help="Image files, folders (searched recursively) or a manifest .csv."),
    run: Path = typer.Option(..., "--run", help="A finished training run folder (config.json, model.pt)."),
    out: Path = typer.Option(..., "--out", help="Output folder; rerunning the same command resumes the batch."),
    engine: str = typer.Option("torch", "--engine", help="Classifier engine: torch or onnx (ONNX Runtime, CPU)."),
    seg_engine: str = typer.Option("auto", "--seg-engine", help="Segmentation engine: auto, torch or onnx."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N] (the onnx engines run on the CPU)."),
    allow_qc_fail: bool = typer.Option(
        False, "--allow-qc-fail", help="Also score films whose lung mask fails QC (the row says so)."
    ),
    cam: bool = typer.Option(True, "--cam/--no-cam", help="Grad-CAM of the top finding in each picture."),
    seg_backend: str = typer.Option(
        None, "--seg-backend", help="Segmentation backend when the run does not record one (e.g. litemedsam)."
    ),
    seg_weights: str = typer.Option(
        None, "--seg-weights", help="Segmentation checkpoint (PATH, or 'bundled'); must match the run's SHA-256."
    ),
    spacing_mm: float = typer.Option(
        None, "--spacing-mm", help="Pixel spacing of films that do not state one (loose masks in mm need it)."
    ),
    onnx_model: Path = typer.Option(None, "--onnx-model", help="classifier.onnx from `lungprior export`."),
    no_finding: str = typer.Option(
        None, "--no-finding", help="No Finding score: max (1 - max p) or prod (prod of 1 - p); default: the run's."
    ),
) -> None:
    """Segment, mask and score new films; writes predictions.csv, errors.csv, one PNG per film and index.html."""
    from lungprior.predict import predict_films

    result = predict_films(
        run, inputs, out, engine=engine, seg_engine=seg_engine, device=device, allow_qc_fail=allow_qc_fail, cam=cam,
        seg_backend=seg_backend, seg_weights=seg_weights, spacing_mm=spacing_mm, onnx_model=onnx_model,
        no_finding=no_finding,
    )
    typer.echo(f"films: {result.total}  scored: {result.scored}  not scored (QC): {result.not_scored}  "
               f"unreadable: {result.failed}  done before: {result.skipped}")
    typer.echo(f"predictions: {out / 'predictions.csv'}  page: {out / 'index.html'}")


def register(app: typer.Typer) -> None:
    """Add `predict` to the app."""
    app.command("predict")(predict_command)
