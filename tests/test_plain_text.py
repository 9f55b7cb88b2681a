"""User strings (image ids, paths, names) are plain text: no mathtext in figures, no Rich markup on the console."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.layout import mask_name
from lungprior.report.figures import histogram
from lungprior.segment.infer.qc import QC_COLUMNS

NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=3, size=64, seed=1), root, workers=1, progress=False)
    return root


def test_masks_gallery_with_a_formula_id_and_a_markup_path(bench: Path, tmp_path: Path) -> None:
    df = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})
    seg = tmp_path / "seg"
    (seg / "masks").mkdir(parents=True)
    ids = ["$^$", "[bold]b"]
    for new, old in zip(ids, df["image_id"], strict=False):
        shutil.copy(bench / "masks" / f"{old}.png", seg / "masks" / mask_name(new))
    df = df.iloc[: len(ids)].assign(image_id=ids, path=[str(bench / p) for p in df["path"].iloc[: len(ids)]])
    manifest = tmp_path / "m.csv"
    df.to_csv(manifest, index=False)
    gallery = tmp_path / "[/x]" / "[bold]g.png"
    result = CliRunner().invoke(app, ["masks", "--manifest", str(manifest), "--seg", str(seg), "--gallery",
                                      str(gallery), "--n", "2", "--radius-px", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"gallery: {gallery}  (films: 2" in result.stdout and gallery.is_file()


def test_segment_prints_markup_paths_as_text(tmp_path: Path) -> None:
    out = tmp_path / "[/x]"
    out.mkdir(parents=True)
    (out / "qc.shard-0.csv").write_text(",".join(QC_COLUMNS) + "\n")
    result = CliRunner().invoke(app, ["segment", "--merge", "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"merged: {out / 'qc.csv'}" in result.stdout


def test_nih_prints_markup_paths_as_text(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    rows = [f"{p:08d}_000.png,{'Mass' if p % 2 else 'No Finding'},0,{p},50,M,PA,2500,2048,0.143,0.143,"
            for p in range(1, 21)]
    table.write_text("\n".join([NIH_HEADER, *rows]) + "\n")
    out = tmp_path / "[/x]" / "[red]out"
    result = CliRunner().invoke(app, ["nih", "--labels", str(table), "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out / 'manifest.csv'}" in result.stdout.replace("\n", "")  # long paths wrap


def test_report_figure_text_is_not_mathtext() -> None:
    uri = histogram(np.linspace(0.0, 1.0, 20), title="$^$ run", xlabel="$\\frac{")
    assert uri.startswith("data:image/png;base64,")
