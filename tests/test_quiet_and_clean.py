"""Small things: plain values in label errors, no library chatter on stderr, a killed phantom's temp files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lungprior.data.lock import folder_lock
from lungprior.data.manifest import read_manifest
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError, ManifestError

CFG = PhantomConfig(n=40, size=64, seed=2, val_fraction=0.2, test_fraction=0.2)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "b"
    generate_benchmark(CFG, out, workers=1, progress=False)
    return out


def test_label_error_shows_plain_values(bench: Path, tmp_path: Path) -> None:
    df = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})
    df.loc[2, "Mass"] = None
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError) as err:
        read_manifest(tmp_path / "m.csv")
    assert f"'Mass' must be 0 or 1, got an empty cell for {df.loc[2, 'image_id']}" in str(err.value)
    df.loc[2, "Mass"] = 2.5
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match=r"got 2\.5 for") as err:
        read_manifest(tmp_path / "m.csv")
    assert "np." not in str(err.value)


def test_rerun_removes_a_killed_runs_temp_files(bench: Path, tmp_path: Path) -> None:
    stale = [bench / "images" / ".phantom_00001.png.k2j3.png.tmp", bench / ".manifest.csv.x8.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (bench / "images" / "phantom_00003.png").unlink()  # the film being written when killed
    generate_benchmark(CFG, bench, workers=1, progress=False)
    assert not any(p.exists() for p in stale) and (bench / "images" / "phantom_00003.png").is_file()
    assert not list(bench.rglob(".*"))  # no lock or temporary file left behind


def test_a_second_live_generation_is_refused(bench: Path) -> None:
    with folder_lock(bench, "phantom"), pytest.raises(LungpriorError, match=f"{bench}: in use by process"):
        generate_benchmark(CFG, bench, workers=1, progress=False)


def test_training_prints_no_library_chatter(bench: Path, tmp_path: Path) -> None:
    """The CLI as a user runs it (a fresh process: Lightning logs to stderr there, unlike under pytest)."""
    args = ["train", "--manifest", str(bench / "manifest.csv"), "--out", str(tmp_path / "run"), "--backbone",
            "resnet10t", "--image-size", "32", "--epochs", "1", "--batch-size", "16", "--accelerator", "cpu",
            "--devices", "1", "--mode", "tight"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "lungprior.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "run finished" in done.stdout
    assert "\nWarnings (" in done.stdout or "\nNo warnings." in done.stdout  # the run's warning list, at the end
    for chatter in ("GPU available", "TPU available", "Tip:", "`Trainer.fit` stopped", "Warning"):
        assert chatter not in done.stderr, done.stderr
