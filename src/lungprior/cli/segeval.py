"""`lungprior segeval`: score predicted lung masks against ground truth (see `lungprior.segment.segeval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lungprior.console import plain_console


def segeval_command(
    manifest: Annotated[Path, typer.Option(help="Manifest of the films (a segdata manifest carries mask_path).")],
    pred: Annotated[Path, typer.Option(help="A `lungprior segment` output folder or its masks/ folder.")],
    out: Annotated[Path, typer.Option(help="Output folder: films.csv, summary.json, worst.png.")],
    gt: Annotated[
        Path | None, typer.Option(help="Folder of ground-truth masks <image id>.png (default: manifest mask_path).")
    ] = None,
    worst: Annotated[int, typer.Option(help="How many worst films to list and show.")] = 8,
) -> None:
    """Dice, IoU, HD95 and mean surface distance per film, per lung and in summary, with the QC flag beside each."""
    from lungprior.segment.segeval import evaluate_segmentations

    result = evaluate_segmentations(manifest, pred, out, gt=gt, worst=worst)
    s = result.summary["all"]
    unit = ", ".join(result.summary["units"])
    console = plain_console()
    console.print(f"films scored: {s['n']}  not scored: {len(result.summary['not_scored'])}")
    console.print(f"Dice mean {s['dice']['mean']:.4f}  median {s['dice']['median']:.4f}  p10 {s['dice']['p10']:.4f}"
                  f"  min {s['dice']['min']:.4f}  below 0.90: {s['below_0.90']}")
    console.print(f"HD95 mean {s['hd95']['mean']:.2f}  median {s['hd95']['median']:.2f} ({unit}); "
                  f"MSD mean {s['msd']['mean']:.2f}")
    for view, v in result.summary["by_view"].items():
        console.print(f"  {view}: n={v['n']}  Dice mean {v['dice']['mean']:.4f}  median {v['dice']['median']:.4f}")
    qc = result.summary["qc"]
    console.print(f"QC flags {qc['bad_flagged']}/{qc['bad_films (dice<0.85)']} films with Dice < 0.85 and "
                  f"{qc['good_flagged']}/{qc['good_films']} others")
    for row in result.summary["worst"]:
        console.print(f"  worst: {row['image_id']}  Dice {row['dice']:.4f}  qc {row['qc_flag'] or '-'}")
    console.print(f"films: {result.out / 'films.csv'}")
    console.print(f"summary: {result.out / 'summary.json'}")


def register(app: typer.Typer) -> None:
    """Add `segeval` to the app."""
    app.command("segeval")(segeval_command)
