"""The films of a `predict` batch: image files, folders (recursive), DICOM series folders or a manifest."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lungprior.data.dicom import pixel_spacing
from lungprior.data.io import is_image_file
from lungprior.data.manifest import read_csv, resolve
from lungprior.errors import LungpriorError, shown
from lungprior.layout import mask_name

#: The settings file `predict_films` writes in its output folder (`pipeline.SETTINGS`): it marks an output folder.
PREDICT_SETTINGS = "predict.json"


@dataclass(frozen=True)
class Film:
    """One film to score: its id (unique in the batch, usable as a file name), file and pixel spacing."""

    image_id: str
    path: Path
    spacing_mm: float | None = None


def collect_films(inputs: Sequence[str | os.PathLike[str]]) -> list[Film]:
    """Expand the inputs in order; a `.csv` is a manifest (`image_id`, `path`, optional `pixel_spacing_mm`).

    Folders are searched recursively (hidden files and folders skipped); a file given by name is taken even
    if its extension is unknown, so that an unreadable file becomes a row of `errors.csv`. Ids are file names
    without their image extension, made unique with a short hash of the path when two files share a name.
    Folders holding a `predict.json` (the output of an earlier `predict`, e.g. an `--out` inside an input folder)
    are skipped, so that a rerun never scores its own pictures.
    """
    if not inputs:
        raise LungpriorError("no input given: pass image files, folders or a manifest .csv")
    found: list[tuple[str | None, Path, float | None]] = []
    for item in inputs:
        p = Path(item)
        if p.suffix.lower() == ".csv" and p.is_file():
            found += _manifest_films(p)
        elif p.is_dir():
            outputs = {marker.parent for marker in p.rglob(PREDICT_SETTINGS)}  # earlier predict outputs in it
            files = sorted(f for f in p.rglob("*")
                           if not _hidden(f, p) and not outputs.intersection(f.parents) and is_image_file(f))
            if not files:
                raise LungpriorError(f"{p}: no image or DICOM files in this folder")
            found += [(None, f, None) for f in files]
        elif p.is_file():
            found.append((None, p, None))
        else:
            raise LungpriorError(f"{p}: no such file or folder")
    return _unique(found)


def film_spacing(film: Film) -> float | None:
    """The film's pixel spacing in mm: from the manifest, else a DICOM header's; None when unknown."""
    if film.spacing_mm is not None:
        return film.spacing_mm
    try:
        import pydicom

        ds = pydicom.dcmread(film.path, stop_before_pixels=True)
    except Exception:  # not a DICOM (or unreadable: the film's own error row says so later)
        return None
    return pixel_spacing(ds)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _manifest_films(path: Path) -> list[tuple[str | None, Path, float | None]]:
    df = read_csv(path)
    df.attrs["root"] = str(path.resolve().parent)
    missing = [c for c in ("image_id", "path") if c not in df.columns]
    if missing:
        raise LungpriorError(f"{path}: a manifest needs the columns image_id and path (missing {', '.join(missing)})")
    given = df["pixel_spacing_mm"] if "pixel_spacing_mm" in df.columns else pd.Series([None] * len(df))
    spacing = pd.to_numeric(given, errors="coerce")
    bad = [pd.notna(g) and not (math.isfinite(v) and v > 0) for g, v in zip(given, spacing, strict=True)]
    if any(bad):
        k = bad.index(True)
        raise LungpriorError(f"{path}: pixel_spacing_mm of {df['image_id'].iloc[k]!r} is {shown(given.iloc[k])}; "
                             "give a positive number of mm, or leave the cell empty")
    return [
        (str(i), resolve(df, str(p)), float(s) if pd.notna(s) else None)
        for i, p, s in zip(df["image_id"], df["path"], spacing, strict=True)
    ]


def _unique(found: list[tuple[str | None, Path, float | None]]) -> list[Film]:
    films: list[Film] = []
    seen: dict[str, Path] = {}
    for given, path, spacing in found:
        image_id = given or mask_name(path.name)[: -len(".png")]
        if mask_name(image_id) in seen:
            if seen[mask_name(image_id)] == path.resolve():
                continue  # the same file given twice
            image_id = f"{image_id}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
        seen[mask_name(image_id)] = path.resolve()
        films.append(Film(image_id, path, spacing))
    return films
