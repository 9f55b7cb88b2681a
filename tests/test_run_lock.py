"""Output-folder locks: a second live `segment` run into one folder is refused; a dead owner never blocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.atomic import write_json
from lungprior.data.lock import folder_lock, lock_path, owner
from lungprior.errors import LungpriorError
from lungprior.segment.infer.qc import QC_COLUMNS
from lungprior.segment.infer.records import CsvLog, write_rows

HOLDER = """
import sys, time
from lungprior.data.lock import folder_lock
with folder_lock(sys.argv[1], "segment"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """Another process that holds `segment`'s lock on tmp_path/out until killed."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _manifest(tmp_path: Path) -> Path:
    Image.fromarray(np.full((32, 32), 80, np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "m.csv"
    pd.DataFrame({"image_id": ["a"], "path": [str(tmp_path / "a.png")], "patient_id": ["P"], "view": ["PA"],
                  "split": ["test"], "pixel_spacing_mm": [1.0]}).to_csv(path, index=False)
    return path


def test_second_segment_run_is_refused_while_the_first_lives(tmp_path: Path, holder) -> None:
    out, proc = holder
    result = CliRunner().invoke(app, ["segment", "--manifest", str(_manifest(tmp_path)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and f"{out}: in use by process {proc.pid} on {socket.gethostname()}" in line
    assert not (out / "masks").exists() and not (out / "qc.csv").exists()


def test_dead_owner_does_not_block(holder) -> None:
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert owner(lock_path(out, "segment"))["pid"] == proc.pid  # the dead owner's record is still there
    with folder_lock(out, "segment"):
        assert owner(lock_path(out, "segment"))["pid"] == os.getpid()
    assert not lock_path(out, "segment").exists()


def test_shards_share_the_folder_but_not_a_shard(tmp_path: Path) -> None:
    def refused(shard: int | None) -> bool:
        try:
            with folder_lock(tmp_path, "segment", shard=shard):
                return False
        except LungpriorError as exc:
            assert f"in use by process {os.getpid()}" in str(exc)
            return True

    with folder_lock(tmp_path, "segment", shard=0), folder_lock(tmp_path, "segment", shard=1):
        assert refused(0) and refused(None) and not refused(2)
    with folder_lock(tmp_path, "segment"):
        assert refused(1)
    assert not refused(None) and not refused(1)


def test_log_refuses_to_append_to_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "qc.csv"
    row = {c: "1" for c in QC_COLUMNS}
    with CsvLog(path, QC_COLUMNS) as log:
        log.append({**row, "image_id": "a"})
        write_rows(path, QC_COLUMNS, [{**row, "image_id": "b"}])  # another process rewrote the table
        with pytest.raises(LungpriorError, match="replaced by another process"):
            log.append({**row, "image_id": "c"})
    write_json(tmp_path / "x.json", {})  # unrelated writes are unaffected
