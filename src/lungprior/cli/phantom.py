"""`lungprior phantom`: generate the synthetic chest X-ray benchmark."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.data.phantom import PhantomConfig, generate_benchmark, parse_per_finding, parse_prevalence
from lungprior.data.phantom.gallery import write_gallery
from lungprior.data.phantom.generate import summarize
from lungprior.labels import LABELS


def phantom_command(
    out: Path = typer.Option(..., "--out", help="Output folder (created; rerun with the same settings resumes)."),
    n: int = typer.Option(2000, "--n", help="Number of films."),
    size: int = typer.Option(256, "--size", help="Film width and height in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same settings and seed give byte-identical files."),
    bias: float = typer.Option(0.0, "--bias", help="Shortcut strength in train/val: P(marker=label) in [0, 1]."),
    test_bias: float = typer.Option(0.0, "--test-bias", help="Shortcut strength in the test split."),
    val_bias: float = typer.Option(
        None, "--val-bias", help="Shortcut strength in the validation split (default: --bias, as in training)."
    ),
    context: float = typer.Option(
        0.0, "--context", help="Finding signal outside the tight lung outline, in [0, 1] (0: none added)."
    ),
    conspicuity: float = typer.Option(
        1.0, "--conspicuity", help="Lesion contrast multiplier in [0.25, 4] (1: the benchmark's own; 2: easier)."
    ),
    finding_conspicuity: str = typer.Option(
        None, "--finding-conspicuity", help="Per-finding contrast multiplier, e.g. 'Nodule=4' (others: --conspicuity)."
    ),
    markers: str = typer.Option(
        "mixed", "--markers", help="Shortcut marker placement: 'mixed' (two near the lungs) or 'far' (all > 20 mm)."
    ),
    prevalence: str = typer.Option(
        None, "--prevalence", help="Per-finding prevalence, e.g. 'Mass=0.1,Edema=0.2' (others keep defaults)."
    ),
    images_per_patient: float = typer.Option(2.0, "--images-per-patient", help="Mean films per patient."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Fraction of patients in validation."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Fraction of patients in test."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0: one per CPU core)."),
    gallery: Path = typer.Option(None, "--gallery", help="Also write a labelled grid of sample films here."),
) -> None:
    """Generate the synthetic benchmark: films, lung masks, lesion masks, NIH-format manifest."""
    output_dir(out)
    if gallery:
        output_dir(gallery.parent, "--gallery")
    cfg = PhantomConfig(
        n=n, size=size, seed=seed, bias=bias, test_bias=test_bias, val_bias=val_bias, context=context,
        conspicuity=conspicuity, finding_conspicuity=parse_per_finding(finding_conspicuity, "--finding-conspicuity"),
        markers=markers, prevalence=parse_prevalence(prevalence),
        images_per_patient=images_per_patient, val_fraction=val_fraction, test_fraction=test_fraction,
    )
    manifest = generate_benchmark(cfg, out, workers=workers or None)
    console = plain_console()
    summary = summarize(manifest)
    table = Table(title=f"{summary['images']} films, {summary['patients']} patients -> {out}")
    table.add_column("label")
    for split in summary["splits"]:
        table.add_column(split, justify="right")
    for label in LABELS:
        table.add_row(label, *(str(s["labels"][label]) for s in summary["splits"].values()))
    table.add_row("images", *(str(s["images"]) for s in summary["splits"].values()))
    console.print(table)
    if gallery:
        console.print(f"gallery: {write_gallery(out, gallery, seed=seed)}")


def register(app: typer.Typer) -> None:
    """Add `phantom` to the app."""
    app.command("phantom")(phantom_command)
