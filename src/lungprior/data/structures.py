"""Import a lung dataset published as per-structure crops listed in a `structure.csv` (V7-style export).

Each row of `structure.csv` names a film (`Filename`, in `images/` beside the CSV), a structure
(`Template Name`), a crop PNG (`Mask`, relative to the CSV's folder) and where the crop goes back into the
film (`Top`, `Left`; `Resolution` is the film's `WxH`). The structure is where the crop's colour channels
are non-zero (alpha only when the crop has no colour). `Left Lung` and `Right Lung` crops are pasted back
and united into one lung mask per film (several crops of one side are united too); a film whose lung
annotation lacks one side is excluded with the reason. Other structures are ignored, or written to
`OUT/structures/<name>/` when asked for. A `metadata.csv` beside the CSV with `patientid` (and `filename`)
makes the split patient-disjoint and adds `patient_id` and `view` to the manifest.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from rich.progress import track

from lungprior.console import plain_console
from lungprior.data.atomic import write_json
from lungprior.data.io import read_image, write_mask, write_png
from lungprior.data.limits import check_pixels
from lungprior.data.manifest import SEG_COLUMNS, SPLITS, read_csv, write_manifest
from lungprior.data.regular import regular_file_problem, require_regular_file
from lungprior.data.safename import safe_name
from lungprior.data.splits import patient_split
from lungprior.errors import ImageReadError, LungpriorError, one_line

PathLike = str | os.PathLike[str]
LUNG_SIDES: tuple[str, str] = ("Right Lung", "Left Lung")
STRUCTURE_COLUMNS: tuple[str, ...] = ("Template Name", "Filename", "Mask", "Top", "Left")
#: Manifest columns written by this importer: the segdata columns plus the patient and the view.
STRUCTURE_MANIFEST_COLUMNS: tuple[str, ...] = (*SEG_COLUMNS, "patient_id", "view")


def slug(name: str) -> str:
    """A folder name for a structure: lower case, runs of other characters replaced by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-") or "structure"


def read_crop(path: PathLike) -> np.ndarray:
    """A structure crop as a bool array: colour channels non-zero (RGB, RGBA, palette, grey 8/16-bit)."""
    try:
        require_regular_file(path, "structure crop")
        with Image.open(path) as im:
            check_pixels(path, *im.size, aspect=False)
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            arr = np.asarray(im)
    except ImageReadError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, LungpriorError, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"unreadable structure crop ({one_line(exc)})") from None
    if arr.ndim == 2:
        return arr != 0
    colour = arr[..., : min(3, arr.shape[2])] if arr.shape[2] != 2 else arr[..., :1]
    found = (colour != 0).any(axis=2)
    if not found.any() and arr.shape[2] in (2, 4):  # a crop drawn in the alpha channel only
        found = arr[..., -1] != 0
    return found


def paste(crop: np.ndarray, top: int, left: int, shape: tuple[int, int]) -> np.ndarray:
    """A full-size (H, W) bool mask with `crop` placed at (top, left); parts outside the film are cut off."""
    h, w = shape
    out = np.zeros((h, w), dtype=bool)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + crop.shape[0]), min(w, left + crop.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = crop[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def read_structure_table(path: PathLike) -> pd.DataFrame:
    """`structure.csv` with its required columns checked; `Top`/`Left` as numbers."""
    table = read_csv(path)
    missing = [c for c in STRUCTURE_COLUMNS if c not in table.columns]
    if missing:
        raise LungpriorError(f"{path}: not a structure CSV, missing column(s) {', '.join(missing)}")
    table = table.copy()
    for column in ("Top", "Left"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def patients_and_views(folder: Path, filenames: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """patient id and view per film from `metadata.csv` (`patientid`, `filename`, `view`), if present."""
    meta_path = folder / "metadata.csv"
    if not meta_path.is_file():
        return {}, {}
    meta = read_csv(meta_path)
    if "patientid" not in meta.columns or "filename" not in meta.columns:
        return {}, {}
    wanted = set(filenames)
    patients: dict[str, str] = {}
    views: dict[str, str] = {}
    for _, row in meta.iterrows():
        name = str(row["filename"])
        if name in wanted and not _blank(row["patientid"]):
            patients[name] = str(row["patientid"]).strip()
            if "view" in meta.columns and not _blank(row["view"]):
                views[name] = str(row["view"]).strip()
    return patients, views


def build_structure_segdata(
    structure_csv: PathLike,
    *,
    out_dir: PathLike,
    images_dir: PathLike | None = None,
    structures: tuple[str, ...] = (),
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_side: int | None = None,
    progress: bool = False,
) -> Any:
    """Import a structure-CSV dataset into `OUT` (manifest.csv, summary.json, masks/, images/ with max_side).

    Returns a `SegdataResult`. `max_side` downsizes films (and masks) whose longest side exceeds it and writes
    them as 8-bit PNG to `OUT/images/` (a smaller copy to move around); without it the manifest points at the
    original films.
    """
    from lungprior.data.segdata import SegdataResult, _check_fractions  # the folder-pair importer's helpers

    _check_fractions(val_fraction, test_fraction)
    if max_side is not None and max_side < 32:
        raise LungpriorError(f"--max-side must be at least 32, got {max_side}")
    csv_path = Path(structure_csv)
    table = read_structure_table(csv_path)
    base = csv_path.parent
    images = Path(images_dir) if images_dir is not None else base / "images"
    if not images.is_dir():
        raise LungpriorError(f"{images}: images folder not found (give --images)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LungpriorError(f"--out {out}: exists and is not a folder")
    table = table[table["Filename"].notna()]
    films = sorted(table["Filename"].astype(str).str.strip().unique())
    patients, views = patients_and_views(base, films)
    ids = _image_ids(films)
    excluded: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    wanted = {slug(s): s for s in structures}
    bar = track(films, description="pasting structure crops", disable=not progress, transient=True,
                console=plain_console(stderr=True))
    for film in bar:
        group = table[table["Filename"].astype(str).str.strip() == film]
        row, problem, notes = _import_film(film, ids[film], group, base, images, out, wanted, max_side)
        warnings.extend({"image_id": ids[film], "message": n} for n in notes)
        if problem is not None:
            excluded.append(problem)
            continue
        row["patient_id"] = patients.get(film, ids[film])
        row["view"] = views.get(film, "")
        rows.append(row)
    manifest = _split(rows, val_fraction, test_fraction, seed)
    counts = {s: int((manifest["split"] == s).sum()) for s in SPLITS}
    summary = {
        "layout": "structure-csv",
        "pairs_checked": len(films),
        "counts": {**counts, "total": len(manifest)},
        "patients": int(manifest["patient_id"].nunique()) if len(manifest) else 0,
        "patient_ids_from": "metadata.csv" if patients else "film (no metadata.csv with patientid)",
        "masks_written": len(manifest),
        "structures_written": sorted(wanted.values()),
        "excluded_count": len(excluded),
        "excluded_by_kind": dict(sorted(Counter(e["kind"] for e in excluded).items())),
        "excluded": excluded,
        "warnings": warnings,
        "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction, "max_side": max_side,
        "inputs": {"structure_csv": str(csv_path.resolve()), "images": str(images.resolve())},
    }
    summary_path = out / "summary.json"
    write_json(summary_path, summary)
    if manifest.empty:
        first = f"; first: {excluded[0]['item']}: {excluded[0]['reason']}" if excluded else ""
        raise LungpriorError(
            f"no film with a usable lung annotation ({len(excluded)} excluded{first}); see {summary_path}"
        )
    manifest_path = out / "manifest.csv"
    write_manifest(manifest, manifest_path, columns=STRUCTURE_MANIFEST_COLUMNS)
    return SegdataResult(manifest, summary, manifest_path, summary_path)


def _import_film(
    film: str, image_id: str, group: pd.DataFrame, base: Path, images: Path, out: Path,
    wanted: dict[str, str], max_side: int | None,
) -> tuple[dict[str, Any], dict[str, str] | None, list[str]]:
    notes: list[str] = []
    path = images / film
    problem = regular_file_problem(path)
    if problem is not None:  # missing, or a FIFO or device (refused before it is opened)
        return {}, _excluded(image_id, path, "image without file", f"film listed in structure.csv: {problem}"), notes
    try:
        image, meta = read_image(path)
    except ImageReadError as exc:
        return {}, _excluded(image_id, path, "unreadable image", exc.reason), notes
    shape = meta.shape
    names = group["Template Name"].astype(str).str.strip()
    sides = {side: group[names == side] for side in LUNG_SIDES}
    missing = [side for side, rows in sides.items() if rows.empty]
    if missing:
        detail = f"lung annotation lacks {' and '.join(missing)} (a half-annotated film)"
        return {}, _excluded(image_id, path, "missing lung side", detail), notes
    lung = np.zeros(shape, dtype=bool)
    for side, rows in sides.items():
        side_mask, problem = _union(rows, base, shape, image_id, notes)
        if problem is not None:
            return {}, problem, notes
        if not side_mask.any():
            return {}, _excluded(image_id, path, "missing lung side", f"{side} mask is empty"), notes
        lung |= side_mask
    if len(sides["Right Lung"]) > 1 or len(sides["Left Lung"]) > 1:
        notes.append("several masks of one side united")
    extra: dict[str, np.ndarray] = {}
    for key in wanted:
        rows = group[names.map(slug) == key]
        if not rows.empty:
            mask, problem = _union(rows, base, shape, image_id, notes)
            if problem is None:
                extra[key] = mask
    film_path = str(path.resolve())
    file = f"{safe_name(image_id)}.png"  # an id from the CSV is never a path: `../x`, `/tmp/a.png` get a safe name
    if max_side is not None:  # a self-contained copy: films (downsized when larger) beside the masks
        if max(shape) > max_side:
            ratio = max_side / max(shape)
            size = (max(1, round(shape[1] * ratio)), max(1, round(shape[0] * ratio)))
            image = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
            lung = _resize_mask(lung, size)
            extra = {k: _resize_mask(v, size) for k, v in extra.items()}
        write_png(out / "images" / file, np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8))
        film_path = f"images/{file}"
    write_mask(out / "masks" / file, lung)
    for key, mask in extra.items():
        write_mask(out / "structures" / key / file, mask)
    spacing = meta.pixel_spacing_mm
    if spacing is not None and max_side is not None and max(shape) > max_side:
        spacing = float(spacing) * max(shape) / max_side
    row = {"image_id": image_id, "path": film_path, "mask_path": f"masks/{file}",
           "pixel_spacing_mm": spacing}
    return row, None, notes


def _union(
    rows: pd.DataFrame, base: Path, shape: tuple[int, int], image_id: str, notes: list[str]
) -> tuple[np.ndarray, dict[str, str] | None]:
    mask = np.zeros(shape, dtype=bool)
    for _, r in rows.iterrows():
        if _blank(r["Mask"]):
            notes.append(f"{r['Template Name']}: row without a mask file ignored")
            continue
        crop_path = base / str(r["Mask"]).strip()
        if not math.isfinite(r["Top"]) or not math.isfinite(r["Left"]):
            return mask, _excluded(image_id, crop_path, "bad placement", "Top/Left are not numbers")
        try:
            crop = read_crop(crop_path)
        except ImageReadError as exc:
            return mask, _excluded(image_id, crop_path, "unreadable mask", exc.reason)
        resolution = r.get("Resolution")
        if not _blank(resolution):
            try:
                want = _resolution(str(resolution))
            except ImageReadError as exc:
                return mask, _excluded(image_id, crop_path, "bad resolution", exc.reason)
            if want is not None and want != shape:
                if abs(want[0] / want[1] - shape[0] / shape[1]) > 0.01:
                    detail = f"structure.csv says {want[1]}x{want[0]} (WxH), film is {shape[1]}x{shape[0]}"
                    return mask, _excluded(image_id, crop_path, "size mismatch", detail)
                mask |= _resize_mask(paste(crop, int(r["Top"]), int(r["Left"]), want), (shape[1], shape[0]))
                notes.append(f"{crop_path.name}: annotated at {want[1]}x{want[0]}, rescaled to the film")
                continue
        mask |= paste(crop, int(r["Top"]), int(r["Left"]), shape)
    return mask, None


def _resolution(text: str) -> tuple[int, int] | None:
    """(H, W) from a `WxH` Resolution cell, through the size gate; None when the cell is not `WxH`."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        return None
    width, height = int(m.group(1)), int(m.group(2))
    check_pixels(f"Resolution {text.strip()}", width, height)
    return height, width


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (W, H) `size` (area-weighted, then >= 0.5)."""
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5


def _image_ids(films: list[str]) -> dict[str, str]:
    """Film name -> image id: the file stem, or the whole name where two films share a stem."""
    stems = Counter(Path(f).stem.lower() for f in films)
    return {f: Path(f).stem if stems[Path(f).stem.lower()] == 1 else f for f in films}


def _split(rows: list[dict[str, Any]], val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[c for c in STRUCTURE_MANIFEST_COLUMNS if c != "split"])
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    assignment = patient_split(df["patient_id"].astype(str).tolist(), fractions, seed) if len(df) else {}
    df["split"] = df["patient_id"].astype(str).map(assignment)
    return df.sort_values("image_id", kind="stable").reset_index(drop=True).loc[:, list(STRUCTURE_MANIFEST_COLUMNS)]


def _excluded(item: str, path: Path, kind: str, detail: str) -> dict[str, str]:
    return {"item": item, "path": str(path), "kind": kind, "reason": f"{kind}: {detail}"}


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or not str(cell).strip()
