"""The manifest: one CSV row per image, the common currency of every stage.

Classification manifests (NIH, the synthetic benchmark) have `MANIFEST_COLUMNS`; lung image–mask datasets
have `SEG_COLUMNS`. Paths in a manifest are absolute or relative to the manifest's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.data.atomic import atomic_open
from lungprior.data.regular import regular_file_problem
from lungprior.errors import ManifestError, shown
from lungprior.labels import FINDINGS, LABELS

SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "patient_id",
    "view",
    "split",
    *LABELS,
    "pixel_spacing_mm",
)
SEG_COLUMNS: tuple[str, ...] = ("image_id", "path", "mask_path", "split", "pixel_spacing_mm")


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str], columns: tuple[str, ...] = MANIFEST_COLUMNS) -> None:
    """Write the manifest's columns, in order, atomically."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: cannot write manifest, missing columns {missing}")
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        df.loc[:, list(columns)].to_csv(fh, index=False)


def read_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV, turning every parse failure into a one-line `ManifestError` naming the file."""
    p = Path(path)
    problem = regular_file_problem(p)  # a FIFO or a device is refused before it is opened
    if problem is not None:
        raise ManifestError(f"{p}: {problem}")
    try:
        df = pd.read_csv(p, dtype={"image_id": str, "patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(f"{p}: not a readable CSV ({first})") from None
    return df


def read_manifest(path: str | os.PathLike[str], *, labels: bool = True) -> pd.DataFrame:
    """Read and validate a classification manifest (`labels=False` skips the label columns)."""
    df = read_csv(path)
    required = MANIFEST_COLUMNS if labels else tuple(c for c in MANIFEST_COLUMNS if c not in LABELS)
    _require(df, required, path)
    if df["image_id"].isna().any() or df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].head(3).tolist()
        raise ManifestError(f"{path}: image_id must be present and unique (duplicates: {dup})")
    bad_split = sorted(set(df["split"].dropna().astype(str)) - set(SPLITS))
    if bad_split or df["split"].isna().any():
        raise ManifestError(f"{path}: split must be one of {list(SPLITS)} (found {bad_split or 'empty'})")
    if labels:
        for col in LABELS:
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna() | ~values.isin([0, 1])
            if bad.any():
                row = df.loc[bad, "image_id"].iloc[0]
                raise ManifestError(
                    f"{path}: label column {col!r} must be 0 or 1, got {shown(df.loc[bad, col].iloc[0])} for {row}"
                )
            df[col] = values.astype(np.int64)
    df["pixel_spacing_mm"] = pd.to_numeric(df["pixel_spacing_mm"], errors="coerce")
    df.attrs["root"] = str(Path(path).resolve().parent)
    return df


def read_seg_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a lung image–mask manifest."""
    df = read_csv(path)
    _require(df, SEG_COLUMNS, path)
    df["pixel_spacing_mm"] = pd.to_numeric(df["pixel_spacing_mm"], errors="coerce")
    df.attrs["root"] = str(Path(path).resolve().parent)
    return df


def resolve(df: pd.DataFrame, value: str | os.PathLike[str]) -> Path:
    """Resolve a path stored in a manifest against the manifest's folder."""
    p = Path(value)
    if p.is_absolute():
        return p
    return Path(df.attrs.get("root", ".")) / p


def derive_no_finding(df: pd.DataFrame) -> pd.Series:
    """No Finding = none of the five findings."""
    return (df.loc[:, list(FINDINGS)].sum(axis=1) == 0).astype(np.int64)


def _require(df: pd.DataFrame, columns: tuple[str, ...], path: str | os.PathLike[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
