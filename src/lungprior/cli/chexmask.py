"""`lungprior chexmask` (published CheXmask masks in lungprior's layout) and `lungprior segeval` (mask agreement)."""

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


def segeval_command(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest of the films to compare."),
    masks_a: Path = typer.Option(..., "--a", help="First masks folder (e.g. a `lungprior segment` run's masks/)."),
    masks_b: Path = typer.Option(..., "--b", help="Second masks folder (e.g. `lungprior chexmask`'s masks/)."),
    out: Path = typer.Option(..., "--out", help="Output base name: OUT.csv per film, OUT.json summary."),
) -> None:
    """Compare two sets of lung masks of the same films: Dice, IoU and lung area, per split."""
    from lungprior.segment.agreement import compare_masks, write_comparison

    table, summary = compare_masks(manifest, masks_a, masks_b)
    csv_path, json_path = write_comparison(table, summary, out)
    s = summary["all"]
    typer.echo(f"compared: {summary['n_compared']} of {summary['n_films']} films  Dice mean {s['dice_mean']:.3f}  "
               f"median {s['dice_median']:.3f}  p05 {s['dice_p05']:.3f}  IoU mean {s['iou_mean']:.3f}")
    typer.echo(f"per film: {csv_path}  summary: {json_path}")


def register(app: typer.Typer) -> None:
    """Add `chexmask` and `segeval` to the app."""
    app.command("chexmask")(chexmask_command)
    app.command("segeval")(segeval_command)
