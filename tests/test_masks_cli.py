"""`lungprior masks`: gallery of tight vs loose/soft masks (on phantom films with their ground-truth lungs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.masks import MaskSpec
from lungprior.masks.gallery import write_mask_gallery


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=3, size=128, seed=1), root, workers=1, progress=False)
    return root


def colour_pixels(png: Path, rgb: tuple[int, int, int], tol: int = 40) -> int:
    arr = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(arr - np.array(rgb)).max(axis=2) <= tol).sum())


ORANGE, GREEN = (255, 149, 0), (52, 199, 89)


def test_loose_gallery_from_the_cli(bench, tmp_path) -> None:
    out = tmp_path / "g.png"
    res = CliRunner().invoke(app, ["masks", "--manifest", str(bench / "manifest.csv"), "--seg", str(bench),
                                   "--mode", "loose", "--gallery", str(out), "--n", "2"])
    assert res.exit_code == 0, res.output
    assert f"gallery: {out}  (films: 2, mask: loose-10mm)" in res.stdout
    assert Image.open(out).size == (1040, 290)  # one row: film + masked film for each of the 2
    assert colour_pixels(out, ORANGE) > 200 and colour_pixels(out, GREEN) > 200
    tight = tmp_path / "t.png"
    assert CliRunner().invoke(app, ["masks", "--manifest", str(bench / "manifest.csv"), "--seg", str(bench),
                                    "--mode", "tight", "--gallery", str(tight), "--n", "1"]).exit_code == 0
    assert colour_pixels(tight, ORANGE) == 0 and colour_pixels(tight, GREEN) > 100


def test_gallery_skips_films_without_usable_masks(bench, tmp_path) -> None:
    df = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})
    df.loc[0, "pixel_spacing_mm"] = np.nan  # loose in mm needs a spacing
    df.loc[1, "image_id"] = "no_mask"
    manifest = tmp_path / "m.csv"
    df.assign(path=[str(bench / p) for p in df["path"]]).to_csv(manifest, index=False)
    result = write_mask_gallery(manifest, bench, MaskSpec("loose", radius_mm=10.0), tmp_path / "g.png", n=8)
    assert result.shown == [df.loc[2, "image_id"]] and [i for i, _ in result.skipped] == [df.loc[0, "image_id"],
                                                                                          "no_mask"]
    assert "pixel spacing is unknown" in result.skipped[0][1] and "file not found" in result.skipped[1][1]
    spec = MaskSpec("loose", radius_mm=10.0, radius_px=4.0)  # pixels where the spacing is unknown
    both = write_mask_gallery(manifest, bench, spec, tmp_path / "h.png", n=8)
    assert both.shown == [df.loc[0, "image_id"], df.loc[2, "image_id"]]
    soft = write_mask_gallery(manifest, bench, MaskSpec("soft", alpha=0.3), tmp_path / "s.png", n=1)
    assert soft.shown == [df.loc[0, "image_id"]] and colour_pixels(tmp_path / "s.png", ORANGE) > 50


def test_gallery_errors(bench, tmp_path) -> None:
    runner = CliRunner()
    base = ["masks", "--manifest", str(bench / "manifest.csv"), "--gallery", str(tmp_path / "g.png")]
    res = runner.invoke(app, [*base, "--seg", str(bench), "--mode", "wide"])
    assert res.exit_code == 2 and res.stderr == "error: --mode 'wide': choose from tight, loose, soft\n"
    res = runner.invoke(app, [*base, "--seg", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: --seg {tmp_path}: no masks/ folder and no mask .png in it; give a ")
    assert "`lungprior segment` output folder" in res.stderr and "the masks/ folder itself" in res.stderr
    res = runner.invoke(app, [*base, "--seg", str(bench), "--alpha", "2", "--mode", "soft"])
    assert res.exit_code == 2 and "alpha must be in [0, 1]" in res.stderr
    with pytest.raises(LungpriorError, match="gallery size must be >= 1"):
        write_mask_gallery(bench / "manifest.csv", bench, MaskSpec("tight"), tmp_path / "x.png", n=0)
    assert not (tmp_path / "g.png").exists()
