"""The run's tables: append-only CSV logs (one flushed row per finished image), clean-up and shard merging.

A run killed mid-write leaves at most one partial last line; it is dropped before the next run appends.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from lungprior.data.atomic import atomic_open
from lungprior.errors import LungpriorError
from lungprior.layout import ERRORS_FILE, QC_FILE
from lungprior.segment.infer.qc import QC_COLUMNS

ERROR_COLUMNS: tuple[str, ...] = ("image_id", "path", "reason")
_SHARD_FILE = re.compile(r"^(qc|errors)\.shard-(\d+)\.csv$")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    return "" if value is None else str(value)


def repair(path: str | os.PathLike[str], columns: Sequence[str]) -> None:
    """Drop a partial last line left by a killed run; refuse a file whose header is not `columns`."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return
    data = p.read_bytes()
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    header = next(csv.reader([keep.decode("utf-8").split("\n", 1)[0]]), []) if keep else []
    if keep and header != list(columns):
        raise LungpriorError(f"{p}: unexpected columns {header}, expected {list(columns)}")
    if keep != data:
        with atomic_open(p, "wb") as fh:
            fh.write(keep)


def read_rows(path: str | os.PathLike[str], columns: Sequence[str]) -> list[dict[str, str]]:
    """The complete rows of a log (none if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, encoding="utf-8", newline="") as fh:
        text = fh.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        return []
    if header != list(columns):
        raise LungpriorError(f"{p}: unexpected columns {header}, expected {list(columns)}")
    return [dict(zip(columns, r, strict=True)) for r in reader if len(r) == len(columns)]


class CsvLog:
    """An append-only CSV: the header when new, then one row per `append`, flushed at once."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        repair(self.path, self.columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.writer(self._fh, lineterminator="\n")
        if new:
            self._writer.writerow(self.columns)
            self._fh.flush()

    def append(self, row: dict[str, object]) -> None:
        """Append and flush one row; refused if the file was replaced or removed since it was opened."""
        try:
            replaced = os.stat(self.path).st_ino != os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            replaced = True
        if replaced:
            raise LungpriorError(f"{self.path}: replaced by another process during this run; rerun to resume")
        self._writer.writerow([_cell(row.get(c)) for c in self.columns])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_rows(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[dict[str, str]], drop: set[str] | None = None
) -> int:
    """Rewrite a table atomically: one row per image id (the last one wins), ids in `drop` removed, sorted by id."""
    latest: dict[str, dict[str, str]] = {}
    for row in rows:
        latest[row["image_id"]] = row
    ids = sorted(i for i in latest if not drop or i not in drop)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for image_id in ids:
            writer.writerow([latest[image_id].get(c, "") for c in columns])
    return len(ids)


def shard_files(out_dir: str | os.PathLike[str], kind: str) -> list[Path]:
    """`<kind>.shard-i.csv` files in a run folder, by shard number."""
    found = []
    for p in Path(out_dir).glob(f"{kind}.shard-*.csv"):
        m = _SHARD_FILE.match(p.name)
        if m and m.group(1) == kind:
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found)]


def finished_ids(out_dir: str | os.PathLike[str]) -> set[str]:
    """Image ids with a QC row in qc.csv or any shard's qc file."""
    files = [Path(out_dir) / QC_FILE, *shard_files(out_dir, "qc")]
    return {row["image_id"] for f in files for row in read_rows(f, QC_COLUMNS)}


def merge_shards(out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Merge qc.csv and every qc.shard-i.csv into qc.csv, and the same for errors.csv; returns their paths.

    One row per image id (shard rows win over older qc.csv rows), sorted by id; an error row is dropped when
    the image has a QC row (it succeeded on a later run).
    """
    out = Path(out_dir)
    qc_shards, error_shards = shard_files(out, "qc"), shard_files(out, "errors")
    if not qc_shards and not error_shards:
        raise LungpriorError(f"{out}: no qc.shard-*.csv or errors.shard-*.csv files to merge")
    qc_rows = [row for f in [out / QC_FILE, *qc_shards] for row in read_rows(f, QC_COLUMNS)]
    done = {row["image_id"] for row in qc_rows}
    error_rows = [row for f in [out / ERRORS_FILE, *error_shards] for row in read_rows(f, ERROR_COLUMNS)]
    write_rows(out / QC_FILE, QC_COLUMNS, qc_rows)
    write_rows(out / ERRORS_FILE, ERROR_COLUMNS, error_rows, drop=done)
    return out / QC_FILE, out / ERRORS_FILE
