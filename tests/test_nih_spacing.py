"""`lungprior nih`: the manifest's pixel spacing is that of the stored image (64-, 512- or 1024-px copies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungprior.data.nih import curate_nih

HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
# image, stored size (w, h) or None for a file whose header cannot be read
STORED = {"a.png": (64, 64), "b.png": (512, 512), "c.png": (1024, 1024), "d.png": (64, 48), "e.png": None}
W, H, SPACING = 2500, 2048, 0.143


def test_spacing_follows_the_stored_size(tmp_path: Path) -> None:
    images = tmp_path / "images" / "sub"
    images.mkdir(parents=True)
    lines = [HEADER]
    for k, (name, size) in enumerate(STORED.items()):
        if size is None:
            (images / name).write_bytes(b"not a png")
        else:
            Image.fromarray(np.zeros((size[1], size[0]), np.uint8)).save(images / name)
        lines.append(f"{name},{'Mass' if k % 2 else 'No Finding'},0,{k + 1},50,M,PA,{W},{H},{SPACING},{SPACING},")
    table = tmp_path / "t.csv"
    table.write_text("\n".join(lines) + "\n")
    result = curate_nih(table, images_dir=tmp_path / "images", val_fraction=0.2, test_fraction=0.2)
    spacing = result.manifest.set_index("image_id")["pixel_spacing_mm"]

    def expected(w: int, h: int) -> float:
        return (SPACING * W / w + SPACING * H / h) / 2

    assert spacing["a.png"] == pytest.approx(expected(64, 64))  # 5.03 mm/px, not the 1024-px 0.31
    assert spacing["b.png"] == pytest.approx(expected(512, 512))
    assert spacing["c.png"] == pytest.approx(expected(1024, 1024))
    assert spacing["d.png"] == pytest.approx(expected(64, 48))
    assert spacing["e.png"] == pytest.approx(expected(1024, 1024))  # unreadable header: the release's size
    assert result.summary["image_size_unreadable"] == ["e.png"]
    assert result.summary["spacing_of"].startswith("stored image size")
    # a "10 mm" loose radius on the 64-px copy is about 2 px, as on the original film scaled down
    assert 10.0 / spacing["a.png"] == pytest.approx(10.0 / SPACING * 64 / ((W + H) / 2), rel=0.01)


def test_without_images_the_release_size_is_assumed(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(f"{HEADER}\na.png,Mass,0,1,50,M,PA,{W},{H},{SPACING},{SPACING},\n"
                     f"b.png,No Finding,0,2,50,M,PA,{W},{H},{SPACING},{SPACING},\n")
    result = curate_nih(table, val_fraction=0.0, test_fraction=0.5)
    assert result.manifest["pixel_spacing_mm"].tolist() == pytest.approx([SPACING * (W + H) / 2048] * 2)
    assert result.summary["spacing_of"] == "1024-px release"
