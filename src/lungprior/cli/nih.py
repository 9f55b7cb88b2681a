"""`lungprior nih`: curate NIH ChestX-ray14 into a patient-disjoint manifest (see `lungprior.data.nih`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lungprior.console import plain_console
from lungprior.data.manifest import SPLITS
from lungprior.data.nih import EXCLUSION_REASONS, curate_nih, write_curation


def nih_command(
    labels: Annotated[Path, typer.Option(help="NIH label table: Data_Entry_2017*.csv or .csv.gz.")],
    out: Annotated[Path, typer.Option(help="Output folder for manifest.csv and summary.json.")],
    images: Annotated[
        Path | None,
        typer.Option(help="Folder holding the PNGs (subfolders searched); without it, paths are images/<name>."),
    ] = None,
    train_list: Annotated[Path | None, typer.Option(help="Official train_val_list.txt (needs --test-list).")] = None,
    test_list: Annotated[Path | None, typer.Option(help="Official test_list.txt (needs --train-list).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Fraction of (train_val) patients put in val.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Fraction of patients put in test (without lists).")] = 0.2,
    no_finding_ratio: Annotated[
        float | None, typer.Option(help="Keep R × positives No Finding images per split (whole patients).")
    ] = None,
    views: Annotated[str, typer.Option(help="Comma-separated views to keep: PA, AP.")] = "PA,AP",
    seed: Annotated[int, typer.Option(help="Seed for the patient split and No Finding subsampling.")] = 0,
) -> None:
    """Select the five findings + No Finding from NIH ChestX-ray14 and split it by patient."""
    result = curate_nih(
        labels, images_dir=images, train_list=train_list, test_list=test_list, val_fraction=val_fraction,
        test_fraction=test_fraction, no_finding_ratio=no_finding_ratio, views=views, seed=seed, progress=True,
    )
    manifest_path, summary_path = write_curation(result, out)
    console = plain_console()
    console.print(_counts_table(result.summary))
    excluded = ", ".join(f"{r.replace('_', ' ')} {result.summary['excluded'][r]}" for r in EXCLUSION_REASONS)
    console.print(f"excluded: {excluded}")
    console.print(f"wrote {manifest_path} and {summary_path}")


def _counts_table(summary: dict) -> Table:
    table = Table(title="NIH curation: images per label and split")
    for column in ("", *SPLITS, "total"):
        table.add_column(column, justify="left" if column == "" else "right")
    for label, counts in summary["label_counts"].items():
        table.add_row(label, *(str(counts[c]) for c in (*SPLITS, "total")))
    for name in ("images", "patients"):
        table.add_row(name, *(str(summary[name][c]) for c in (*SPLITS, "total")), style="bold")
    return table


def register(app: typer.Typer) -> None:
    """Add this command to the app."""
    app.command("nih")(nih_command)
