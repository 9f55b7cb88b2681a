"""Bad classification inputs fail with one clear line: no label column, NaN labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    generate_benchmark(PhantomConfig(n=30, size=64, seed=5), out, progress=False)
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda df: df.drop(columns=["Edema"]), "missing column(s) Edema"),
        (lambda df: df.assign(Mass=df["Mass"].astype(float).where(df.index != 3)),
         "label column 'Mass' must be 0 or 1"),
    ],
)
def test_bad_manifest_is_one_line(bench: Path, tmp_path: Path, edit, message: str) -> None:
    df = pd.read_csv(bench / "manifest.csv")
    bad = bench / f"bad_{abs(hash(message))}.csv"
    edit(df).to_csv(bad, index=False)
    result = CliRunner().invoke(app, ["train", "--manifest", str(bad), "--backbone", "resnet18", "--out",
                                      str(tmp_path / "run"), "--epochs", "1"])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and str(bad) in lines[0]
