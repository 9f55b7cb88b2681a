"""Lung image–mask datasets: pair images with masks, validate every pair, split by image, write a manifest.

Pairs come from matching file stems (mask suffixes such as `_mask`, `-mask`, `_seg`, `_lungs` are
tolerated, case-insensitively, with any extension), from separate right/left lung mask folders
(Montgomery style, merged by logical OR), or from an explicit CSV with columns `image` and `mask`.
Bad pairs are excluded with a reason; non-binary masks are thresholded at 128 with a warning, except a
0/127/255 mask, whose grey 127 means "ignore" (see `lungprior.data.ignore`). Datasets published as
per-structure crops with a `structure.csv` are imported by `lungprior.data.structures`.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import track

from lungprior.console import plain_console
from lungprior.data.atomic import write_json
from lungprior.data.ignore import IGNORE_VALUE, encode_ignore, has_ignore
from lungprior.data.io import list_image_files, read_image, read_mask_raw, write_mask, write_png
from lungprior.data.manifest import SEG_COLUMNS, SPLITS, read_csv, write_manifest
from lungprior.data.safename import safe_name
from lungprior.data.splits import patient_split
from lungprior.errors import ImageReadError, LungpriorError

PathLike = str | os.PathLike[str]
MASK_NAME_SUFFIXES: tuple[str, ...] = (
    "mask", "masks", "seg", "segmentation", "lung", "lungs", "label", "labels", "gt",
)
_SUFFIX_RE = re.compile(r"[_\-. ]+(?:" + "|".join(MASK_NAME_SUFFIXES) + r")$", re.IGNORECASE)


@dataclass(frozen=True)
class ImageMasks:
    """An image and its mask file(s); several masks (right and left lung) are merged by logical OR."""

    image_id: str
    image: Path
    masks: tuple[Path, ...]


@dataclass
class SegdataResult:
    """The manifest (SEG_COLUMNS), the summary written to summary.json, and where both were written."""

    manifest: pd.DataFrame
    summary: dict[str, Any]
    manifest_path: Path
    summary_path: Path


def build_segdata(
    images_dir: PathLike,
    masks_dir: PathLike | None = None,
    *,
    left_dir: PathLike | None = None,
    right_dir: PathLike | None = None,
    pairs_csv: PathLike | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    out_dir: PathLike,
    progress: bool = False,
) -> SegdataResult:
    """Pair, validate, split and write `OUT/manifest.csv`, `OUT/summary.json` and `OUT/masks/*.png`."""
    _check_fractions(val_fraction, test_fraction)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LungpriorError(f"--out {out}: exists and is not a folder")
    images = _folder(images_dir, "--images")
    pairs, excluded = _collect_pairs(images, masks_dir, left_dir, right_dir, pairs_csv)
    rows: list[dict[str, Any]] = []
    warnings: list[dict[str, str]] = []
    bar = track(
        pairs, description="checking image–mask pairs", disable=not progress, transient=True,
        console=plain_console(stderr=True),
    )
    for pair in bar:
        row, problem, notes = validate_pair(pair, out)
        warnings.extend({"image_id": pair.image_id, "message": note} for note in notes)
        if problem is not None:
            excluded.append(problem)
        else:
            rows.append(row)
    manifest = _with_splits(rows, val_fraction, test_fraction, seed)
    summary = _summary(manifest, excluded, warnings, len(pairs), seed, val_fraction, test_fraction)
    summary["inputs"] = {
        "images": str(images.resolve()),
        "masks": _abs(masks_dir), "masks_left": _abs(left_dir), "masks_right": _abs(right_dir),
        "pairs": _abs(pairs_csv),
    }
    summary_path = out / "summary.json"
    write_json(summary_path, summary)
    if manifest.empty:
        first = f"; first: {excluded[0]['path']}: {excluded[0]['reason']}" if excluded else ""
        raise LungpriorError(f"no valid image–mask pairs ({len(excluded)} excluded{first}); see {summary_path}")
    manifest_path = out / "manifest.csv"
    write_manifest(manifest, manifest_path, columns=SEG_COLUMNS)
    return SegdataResult(manifest, summary, manifest_path, summary_path)


def mask_key(stem: str) -> str:
    """The image stem a mask file name points to: lower case, one mask suffix removed."""
    return _SUFFIX_RE.sub("", stem).lower()


def validate_pair(pair: ImageMasks, out_dir: Path) -> tuple[dict[str, Any] | None, dict[str, str] | None, list[str]]:
    """Read both files; return (manifest row, None, warnings) or (None, exclusion, warnings).

    Merged (several masks) or binarised (non-binary values) masks are written to `out_dir/masks/`.
    """
    notes: list[str] = []
    try:
        _, meta = read_image(pair.image)
    except ImageReadError as exc:
        return None, _excluded(pair.image_id, pair.image, "unreadable image", exc.reason), notes
    merged: np.ndarray | None = None
    ignore: np.ndarray | None = None
    top = 0
    rewrite = len(pair.masks) > 1
    for path in pair.masks:
        try:
            raw = read_mask_raw(path)
        except ImageReadError as exc:
            return None, _excluded(pair.image_id, path, "unreadable mask", exc.reason), notes
        if raw.shape != meta.shape:
            got, want = f"{raw.shape[0]}x{raw.shape[1]}", f"{meta.shape[0]}x{meta.shape[1]}"
            detail = f"mask {path.name} is {got} (HxW), image {pair.image.name} is {want}"
            return None, _excluded(pair.image_id, path, "size mismatch", detail), notes
        values = np.unique(raw)
        odd = [int(v) for v in values if v not in (0, 255)]
        if has_ignore(values):
            notes.append(f"{path.name}: grey {IGNORE_VALUE} read as ignore (not lung, left out of losses and metrics)")
            ignore = raw == IGNORE_VALUE if ignore is None else ignore | (raw == IGNORE_VALUE)
            rewrite = True
        elif odd:
            shown = ", ".join(map(str, odd[:6])) + (", ..." if len(odd) > 6 else "")
            notes.append(f"{path.name}: non-binary mask (values {shown}) thresholded at 128")
            rewrite = True
        top = max(top, int(values[-1]))
        binary = raw >= 128
        merged = binary if merged is None else merged | binary
    assert merged is not None
    if not merged.any():
        hint = f"; values are at most {top}, is it a 0/1 mask?" if 0 < top < 128 else ""
        return None, _excluded(pair.image_id, pair.masks[0], "empty mask", f"no pixel >= 128{hint}"), notes
    if merged.all():
        notes.append("mask covers the whole image")
    if rewrite:
        file = f"{safe_name(pair.image_id)}.png"  # a long or odd file stem gets a safe name, recorded below
        if ignore is None:
            write_mask(out_dir / "masks" / file, merged)
        else:
            write_png(out_dir / "masks" / file, encode_ignore(merged, ignore))
        mask_path = f"masks/{file}"
    else:
        mask_path = str(pair.masks[0].resolve())
    row = {
        "image_id": pair.image_id,
        "path": str(pair.image.resolve()),
        "mask_path": mask_path,
        "pixel_spacing_mm": meta.pixel_spacing_mm,
    }
    return row, None, notes


def _collect_pairs(
    images: Path, masks_dir: PathLike | None, left_dir: PathLike | None, right_dir: PathLike | None,
    pairs_csv: PathLike | None,
) -> tuple[list[ImageMasks], list[dict[str, str]]]:
    if (left_dir is None) != (right_dir is None):
        raise LungpriorError("--masks-left and --masks-right must be given together")
    if left_dir is not None and (masks_dir is not None or pairs_csv is not None):
        raise LungpriorError("give either --masks-left/--masks-right or --masks/--pairs, not both")
    if pairs_csv is not None:
        base = _folder(masks_dir, "--masks") if masks_dir is not None else Path(pairs_csv).parent
        return pairs_from_csv(pairs_csv, images, base)
    if masks_dir is None and left_dir is None:
        raise LungpriorError("no masks: give --masks, --masks-left and --masks-right, or --pairs")
    image_files = _files(images, "--images")
    if left_dir is not None:
        folders = {"right mask": _folder(right_dir, "--masks-right"), "left mask": _folder(left_dir, "--masks-left")}
    else:
        folders = {"mask": _folder(masks_dir, "--masks")}
    masks = {role: _files(folder, role) for role, folder in folders.items()}
    if any(folder.resolve() == images.resolve() for folder in folders.values()):
        # One folder holds both: files named with a mask suffix are masks, the others images.
        image_files = [p for p in image_files if mask_key(p.stem) == p.stem.lower()]
        masks = {role: [p for p in files if mask_key(p.stem) != p.stem.lower()] for role, files in masks.items()}
    return pair_by_stem(image_files, masks)


def pair_by_stem(images: list[Path], masks: dict[str, list[Path]]) -> tuple[list[ImageMasks], list[dict[str, str]]]:
    """Pair images with one mask per role ("mask", or "right mask" and "left mask") by file stem."""
    excluded: list[dict[str, str]] = []
    by_key: dict[str, list[Path]] = defaultdict(list)
    for path in images:
        by_key[path.stem.lower()].append(path)
    for key, paths in by_key.items():
        if len(paths) > 1:
            detail = f"several images share stem {key}: " + ", ".join(p.name for p in paths)
            excluded.extend(_excluded(path.stem, path, "ambiguous image", detail) for path in paths)
    index = {key: paths[0] for key, paths in by_key.items() if len(paths) == 1}
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    bad: set[str] = set()
    for role, files in masks.items():
        matches: dict[str, list[Path]] = defaultdict(list)
        for path in files:
            key = path.stem.lower() if path.stem.lower() in by_key else mask_key(path.stem)
            if key in by_key:
                matches[key].append(path)
            else:
                excluded.append(_excluded(path.stem, path, f"{role} without image", "no image with this stem"))
        for key, paths in matches.items():
            if len(paths) > 1 and key in index:
                names = ", ".join(p.name for p in paths)
                excluded.append(_excluded(index[key].stem, index[key], "ambiguous mask", f"several {role}s: {names}"))
                bad.add(key)
            found[key][role] = paths[0]
    pairs = []
    for key, image in sorted(index.items()):
        if key in bad:
            continue
        missing = [role for role in masks if role not in found[key]]
        if missing:
            excluded.append(_excluded(image.stem, image, f"image without {missing[0]}", "no matching mask file"))
            continue
        pairs.append(ImageMasks(image.stem, image, tuple(found[key][role] for role in masks)))
    return pairs, excluded


def pairs_from_csv(
    csv_path: PathLike, images_dir: Path, masks_dir: Path
) -> tuple[list[ImageMasks], list[dict[str, str]]]:
    """Pairs listed in a CSV (columns image, mask); relative paths are taken from the given folders."""
    table = read_csv(csv_path)
    columns = {str(c).strip().lower(): c for c in table.columns}
    if "image" not in columns or "mask" not in columns:
        raise LungpriorError(f"{csv_path}: a pairs CSV needs columns 'image' and 'mask', got {list(table.columns)}")
    excluded: list[dict[str, str]] = []
    candidates: list[ImageMasks] = []
    for number, (image_cell, mask_cell) in enumerate(
        zip(table[columns["image"]], table[columns["mask"]], strict=True), start=2
    ):
        if _blank(image_cell):
            row = f"{Path(csv_path).name} row {number}"
            excluded.append(_excluded(row, Path(csv_path), "mask without image", "no image in this row"))
            continue
        image = _under(images_dir, image_cell)
        mask = None if _blank(mask_cell) else _under(masks_dir, mask_cell)
        if mask is None:
            excluded.append(_excluded(image.stem, image, "image without mask", f"no mask in row {number}"))
        elif not image.is_file():
            excluded.append(_excluded(image.stem, image, "mask without image", f"image file not found (row {number})"))
        elif not mask.is_file():
            excluded.append(_excluded(image.stem, mask, "image without mask", f"mask file not found (row {number})"))
        else:
            candidates.append(ImageMasks(image.stem, image, (mask,)))
    counts = Counter(p.image_id.lower() for p in candidates)
    pairs = []
    for pair in candidates:
        if counts[pair.image_id.lower()] > 1:
            detail = f"image id {pair.image_id} is listed {counts[pair.image_id.lower()]} times"
            excluded.append(_excluded(pair.image_id, pair.image, "ambiguous image", detail))
        else:
            pairs.append(pair)
    return pairs, excluded


def _with_splits(rows: list[dict[str, Any]], val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Random split by image, fixed by `seed` and independent of the input order."""
    df = pd.DataFrame(rows, columns=[c for c in SEG_COLUMNS if c != "split"])
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    assignment = patient_split(df["image_id"].tolist(), fractions, seed) if len(df) else {}
    df["split"] = df["image_id"].map(assignment)
    return df.sort_values("image_id", kind="stable").reset_index(drop=True).loc[:, list(SEG_COLUMNS)]


def _summary(
    manifest: pd.DataFrame, excluded: list[dict[str, str]], warnings: list[dict[str, str]], candidates: int,
    seed: int, val_fraction: float, test_fraction: float,
) -> dict[str, Any]:
    counts = {s: int((manifest["split"] == s).sum()) for s in SPLITS}
    return {
        "pairs_checked": candidates,
        "counts": {**counts, "total": len(manifest)},
        "masks_written": int(manifest["mask_path"].str.startswith("masks/").sum()) if len(manifest) else 0,
        "excluded_count": len(excluded),
        "excluded_by_kind": dict(sorted(Counter(e["kind"] for e in excluded).items())),
        "excluded": excluded,
        "warnings": warnings,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
    }


def _excluded(item: str, path: Path, kind: str, detail: str) -> dict[str, str]:
    return {"item": item, "path": str(path), "kind": kind, "reason": f"{kind}: {detail}"}


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value < 1.0):
            raise LungpriorError(f"{name} must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1.0:
        total = val_fraction + test_fraction
        raise LungpriorError(f"--val-fraction + --test-fraction must be below 1 to leave a train split, got {total:g}")


def _folder(path: PathLike | None, option: str) -> Path:
    p = Path(path) if path is not None else None
    if p is None or not p.is_dir():
        raise LungpriorError(f"{option} {p}: folder not found")
    return p


def _files(folder: Path, what: str) -> list[Path]:
    files = list_image_files(folder)
    if not files:
        raise LungpriorError(f"{folder}: no image files for {what} (PNG, JPEG, TIFF, DICOM; subfolders not searched)")
    return files


def _under(base: Path, cell: Any) -> Path:
    p = Path(str(cell).strip()).expanduser()
    return p if p.is_absolute() else base / p


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or not str(cell).strip()


def _abs(path: PathLike | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None
