"""`lungprior chexmask`: published CheXmask masks in lungprior's layout (compare them with `lungprior segeval`)."""

from __future__ import annotations

from pathlib import Path

import typer


def chexmask_command(
    csv: Path = typer.Option(..., "--csv", help="A CheXmask table (e.g. ChestX-Ray8.csv, .csv.gz accepted)."),
    manifest: Path = typer.Option(..., "--manifest", help="Manifest of the stored films (sizes are read there)."),
    out: Path = typer.Option(..., "--out", help="Folder: masks/, heart/, excluded.csv (a rerun resumes)."),
    min_rca: float = typer.Option(0.7, "--min-rca", help="Keep rows with Dice RCA (Mean) at least this."),
) -> None:
    """Write CheXmask's lung (and heart) masks for the manifest's films, scaled to each film's size."""
    from lungprior.data.chexmask import convert_chexmask

    r = convert_chexmask(csv, manifest, out, min_rca=min_rca)
    typer.echo(f"masks written: {r.written}  done before: {r.skipped}  excluded: {r.excluded} ({r.excluded_path})")
    typer.echo(f"masks: {r.masks_dir}")


def register(app: typer.Typer) -> None:
    """Add `chexmask` to the app."""
    app.command("chexmask")(chexmask_command)
