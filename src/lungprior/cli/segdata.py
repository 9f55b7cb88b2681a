"""`lungprior segdata`: build a lung image–mask dataset manifest (see `lungprior.data.segdata`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.data.manifest import SPLITS
from lungprior.data.segdata import build_segdata
from lungprior.data.structures import build_structure_segdata
from lungprior.errors import LungpriorError


def segdata_command(
    out: Annotated[Path, typer.Option(help="Output folder for manifest.csv, summary.json and masks/.")],
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of images (PNG, JPEG, TIFF, DICOM; not searched below; with --structure-csv: "
                     "default images/ beside the CSV)."),
    ] = None,
    structure_csv: Annotated[
        Path | None,
        typer.Option(help="A structure.csv of per-structure crops (V7-style export): Left + Right Lung united, "
                     "split by metadata.csv's patientid."),
    ] = None,
    structures: Annotated[
        str, typer.Option(help="With --structure-csv: comma-separated other structures to write to structures/.")
    ] = "",
    max_side: Annotated[
        int | None, typer.Option(help="With --structure-csv: downsize films above this many pixels into images/.")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Folder of lung masks matched to images by file stem (or base for --pairs).")
    ] = None,
    masks_right: Annotated[
        Path | None, typer.Option(help="Folder of right-lung masks (with --masks-left; merged by logical OR).")
    ] = None,
    masks_left: Annotated[Path | None, typer.Option(help="Folder of left-lung masks (with --masks-right).")] = None,
    pairs: Annotated[
        Path | None, typer.Option(help="CSV with columns image, mask: paths relative to --images / --masks.")
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Fraction of images put in val.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Fraction of images put in test.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed for the random split (by patient when known, else by image).")] = 0,
) -> None:
    """Pair images with lung masks, check every pair, split (by patient when known) and write a manifest."""
    output_dir(out)
    if structure_csv is not None:
        if masks is not None or masks_left is not None or masks_right is not None or pairs is not None:
            raise LungpriorError("--structure-csv holds the masks: do not give --masks, --masks-left/right or --pairs")
        names = tuple(s.strip() for s in structures.split(",") if s.strip())
        result = build_structure_segdata(
            structure_csv, out_dir=out, images_dir=images, structures=names, val_fraction=val_fraction,
            test_fraction=test_fraction, seed=seed, max_side=max_side, progress=True,
        )
    else:
        if images is None:
            raise LungpriorError("--images is required (or give --structure-csv)")
        result = build_segdata(
            images, masks, left_dir=masks_left, right_dir=masks_right, pairs_csv=pairs,
            val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, out_dir=out, progress=True,
        )
    summary = result.summary
    console = plain_console(highlight=False)
    console.print(f"pairs checked: {summary['pairs_checked']}")
    for split in SPLITS:
        console.print(f"{split}: {summary['counts'][split]}")
    console.print(f"kept: {summary['counts']['total']}")
    console.print(f"excluded: {summary['excluded_count']}")
    for kind, count in summary["excluded_by_kind"].items():
        console.print(f"  {kind}: {count}")
    console.print(f"warnings: {len(summary['warnings'])}")
    console.print(f"masks written: {summary['masks_written']}")
    console.print(f"manifest: {result.manifest_path}")
    console.print(f"summary: {result.summary_path}")


def register(app: typer.Typer) -> None:
    """Add `segdata` to the app."""
    app.command("segdata")(segdata_command)
