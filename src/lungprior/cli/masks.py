"""`lungprior masks`: a gallery of tight vs loose/soft lung masks on films of a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.errors import LungpriorError
from lungprior.masks.spec import DEFAULT_ALPHA, DEFAULT_RADIUS_MM, MaskSpec

GALLERY_MODES = ("tight", "loose", "soft")


def masks_command(
    manifest: Path = typer.Option(..., "--manifest", help="Manifest CSV of the films."),
    seg: Path = typer.Option(..., "--seg", help="A `lungprior segment` output folder or its masks/ folder."),
    gallery: Path = typer.Option(..., "--gallery", help="Output PNG."),
    mode: str = typer.Option("loose", "--mode", help="Mask shown against tight: tight, loose or soft."),
    radius_mm: float = typer.Option(DEFAULT_RADIUS_MM, "--radius-mm", help="Loose: dilation radius in mm."),
    radius_px: float = typer.Option(
        None, "--radius-px", help="Loose: radius in pixels for films whose pixel spacing is unknown."
    ),
    hull: bool = typer.Option(False, "--hull", help="Loose: convex hull of each lung before dilating."),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", help="Soft: weight kept outside the lungs (0..1)."),
    fill: str = typer.Option("zero", "--fill", help="What replaces masked-out pixels: zero or mean."),
    n: int = typer.Option(8, "--n", help="Number of films (first ones in the manifest with a mask)."),
) -> None:
    """Draw tight vs the chosen mask on films, with the masked film beside each."""
    from lungprior.masks.gallery import write_mask_gallery  # PyTorch loads only when the gallery is drawn

    if mode not in GALLERY_MODES:
        raise LungpriorError(f"--mode {mode!r}: choose from {', '.join(GALLERY_MODES)}")
    output_dir(gallery.parent, "--gallery")
    spec = MaskSpec(mode=mode, radius_mm=radius_mm, radius_px=radius_px, hull=hull, alpha=alpha, fill=fill)
    result = write_mask_gallery(manifest, seg, spec, gallery, n=n)
    console = plain_console(highlight=False, soft_wrap=True)
    console.print(f"gallery: {result.path}  (films: {len(result.shown)}, mask: {spec.key()})")
    for image_id, reason in result.skipped:
        console.print(f"skipped {image_id}: {reason}")


def register(app: typer.Typer) -> None:
    """Add `masks` to the app."""
    app.command("masks")(masks_command)
