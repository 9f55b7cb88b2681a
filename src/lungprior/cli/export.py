"""`lungprior export`: a run's classifier as ONNX with a JSON model card."""

from __future__ import annotations

from pathlib import Path

import typer


def export_command(
    run: Path = typer.Option(..., "--run", help="A finished training run folder."),
    out: Path = typer.Option(..., "--out", help="Folder for classifier.onnx and model_card.json."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
) -> None:
    """Export the classifier (preprocessing and mask applied outside, see the model card)."""
    from lungprior.classify.export import export_run

    result = export_run(run, out, fmt)
    typer.echo(f"model: {result.onnx}\nmodel card: {result.card}")


def register(app: typer.Typer) -> None:
    """Add `export` to the app."""
    app.command("export")(export_command)
