"""File-system errors on outputs: one line naming the path and the cause, exit 2, nothing half-written.

A read-only folder is a read-only tmpfs mount when the tests may mount (root in a container), else a folder
without write permission (not for root); a full disk is a tiny tmpfs mount (skipped where mounting is refused).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.atomic import output_dir
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    except OSError:
        return False
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """An empty folder nothing can be written in."""
    folder = tmp_path / "ro"
    if _mount(folder, "ro,size=1m"):
        yield folder
        _umount(folder)
        return
    if os.geteuid() == 0:
        pytest.skip("root without permission to mount: cannot make a read-only folder")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB file system that a phantom benchmark of 40 films does not fit in."""
    folder = tmp_path / "disk"
    if not _mount(folder, "size=96k"):
        pytest.skip("cannot mount a small tmpfs here")
    yield folder
    _umount(folder)


def _one_line_exit_2(args: list[str], *expected: str) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    line = result.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: "), result.stderr
    for text in expected:
        assert text in line, line
    return line


def _cause() -> str:
    return "Read-only file system" if os.geteuid() == 0 else "Permission denied"


def test_output_dir_helper(tmp_path: Path, read_only: Path) -> None:
    assert output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir())  # the write check leaves nothing behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(LungpriorError, match="exists and is not a folder"):
        output_dir(tmp_path / "file")
    with pytest.raises(LungpriorError, match=f"--out {read_only / 'x'}: cannot write here"):
        output_dir(read_only / "x")


@pytest.mark.parametrize(
    "command",
    [
        ["phantom", "--n", "4", "--size", "64", "--out", "{out}"],
        ["segdata", "--images", "{tmp}", "--masks", "{tmp}", "--out", "{out}"],
        ["segment", "--manifest", "{tmp}/m.csv", "--out", "{out}"],
        ["train", "--manifest", "{tmp}/m.csv", "--out", "{out}"],
        ["masks", "--manifest", "{tmp}/m.csv", "--seg", "{tmp}", "--gallery", "{out}/g.png"],
        ["demo", "--out", "{out}"],
        ["compare", "{tmp}/a", "{tmp}/b", "--out", "{out}/cmp"],
        ["evaluate", "--run", "{ro}"],
        ["finetune", "--data", "{tmp}/m.csv", "--out", "{out}"],
    ],
    ids=lambda c: c[0],
)
def test_read_only_output_is_one_line(tmp_path: Path, read_only: Path, command: list[str]) -> None:
    out = read_only / "out"
    args = [a.format(out=out, tmp=tmp_path, ro=read_only) for a in command]
    _one_line_exit_2(args, str(out if "{ro}" not in command else read_only), _cause())
    assert not out.exists()


def test_out_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    _one_line_exit_2(["phantom", "--n", "4", "--size", "64", "--out", str(target)], str(target), "not a folder")
    assert target.read_text() == "x"


def test_manifest_in_a_read_only_folder_says_cache(tmp_path: Path) -> None:
    data = tmp_path / "data"
    if not _mount(data, "size=8m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        generate_benchmark(PhantomConfig(n=24, size=64, seed=1), data, workers=1, progress=False)
        _remount_read_only(data)
        line = _one_line_exit_2(
            ["train", "--manifest", str(data / "manifest.csv"), "--out", str(tmp_path / "run"), "--epochs", "1",
             "--image-size", "32", "--accelerator", "cpu", "--devices", "1"],
            str(data / ".lungprior-cache"), "Read-only file system", "--cache",
        )
        assert "Traceback" not in line
    finally:
        _umount(data)


def test_full_disk_is_one_line_and_leaves_no_partial_file(small_disk: Path) -> None:
    out = small_disk / "bench"
    _one_line_exit_2(["phantom", "--n", "40", "--size", "64", "--workers", "1", "--out", str(out)],
                     "No space left on device", str(out))
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
