"""NIH ChestX-ray14 curation: the study's subset of the label table, patient-disjoint splits, a manifest.

Selection: every image with at least one of the five findings (other co-findings ignored) plus the images
labelled exactly "No Finding"; images whose labels are only other findings are excluded and counted.
Splits are patient-disjoint. With the official lists, test = `test_list.txt` and val is `val_fraction` of the
patients of `train_val_list.txt`; without them, the table's patients are split by `patient_split`. A patient's
split depends only on the table, the lists and the seed (not on views, subsampling or missing files).
No Finding subsampling (`no_finding_ratio=R`): each split keeps the No Finding images of whole patients, taken
in a seeded order, up to round(R × its positive images), skipping a patient whose images would overshoot; so
a patient's No Finding images are kept or dropped together, and every split gets the same ratio.
Paths: with `images_dir`, the absolute path from one index of the folder tree (first in sorted order wins);
wanted files not found are excluded and named in the summary. Without it, `images/<Image Index>` relative to
the manifest's folder: put or link the images there.
Each excluded image is counted once, under the first reason that applies, in the order of `EXCLUSION_REASONS`.
Pixel spacing: the table gives the original film's size and spacing; the manifest's spacing is that of the
stored image, read from each file's header with `images_dir` (a 64- or 512-px copy gets its own spacing),
else that of the released 1024-px PNGs.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn

from lungprior.data.atomic import write_json
from lungprior.data.io import image_size
from lungprior.data.manifest import SPLITS, derive_no_finding, write_manifest
from lungprior.data.splits import check_patient_disjoint, patient_split, seeded_order
from lungprior.errors import ImageReadError, LungpriorError, ManifestError
from lungprior.labels import FINDINGS, LABELS, NO_FINDING

REQUIRED_COLUMNS: tuple[str, ...] = ("Image Index", "Finding Labels", "Patient ID", "View Position")
SPACING_COLUMN = "OriginalImagePixelSpacing[x"
NIH_PNG_SIZE = 1024  # the released PNGs are the originals resized to 1024 x 1024
NIH_VIEWS: tuple[str, ...] = ("PA", "AP")
EXCLUSION_REASONS: tuple[str, ...] = (
    "invalid_row", "other_findings_only", "view_not_selected", "not_in_split_lists", "missing_file",
    "no_finding_subsampled",
)
_READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, EOFError,
                zlib.error)

PathLike = str | os.PathLike[str]


@dataclass
class NihCuration:
    """The curated manifest (`MANIFEST_COLUMNS`) and a JSON-ready summary of counts and exclusions."""

    manifest: pd.DataFrame
    summary: dict[str, Any]


def read_nih_table(path: PathLike) -> pd.DataFrame:
    """Read `Data_Entry_2017*.csv[.gz]` as strings; a malformed table raises a one-line `ManifestError`."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: label table not found")
    try:
        with open(p, "rb") as fh:
            gzipped = fh.read(2) == b"\x1f\x8b"
        with warnings.catch_warnings():  # the 2017 file's trailing commas: one empty field beyond the header
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            table = pd.read_csv(
                p, dtype=str, keep_default_na=False, index_col=False, encoding="utf-8",
                compression="gzip" if gzipped else None,
            )
    except _READ_ERRORS as exc:
        raise ManifestError(f"{p}: not a readable label table ({_first_line(exc)})") from None
    return _validate_table(table, str(p))


def parse_views(views: str | Sequence[str]) -> tuple[str, ...]:
    """Parse "PA,AP" (or a sequence of names) into distinct upper-case NIH views."""
    names = [str(v).strip().upper() for v in (views.split(",") if isinstance(views, str) else views)]
    unknown = [v for v in names if v not in NIH_VIEWS]
    if unknown or not names:
        found = ", ".join(map(repr, unknown)) or "none given"
        raise LungpriorError(f"views: {views!r} must be PA and/or AP (unknown: {found})")
    return tuple(dict.fromkeys(names))


def read_image_list(path: PathLike) -> list[str]:
    """Read an official split list (`train_val_list.txt`, `test_list.txt`): one image name per line."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: image list not found")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: not a readable image list ({_first_line(exc)})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ManifestError(f"{p}: image list is empty")
    return names


def index_images(images_dir: PathLike, *, progress: bool = False) -> dict[str, Path]:
    """Map file name → absolute path for every file under `images_dir` (one walk; first in sorted order wins)."""
    root = Path(images_dir)
    if not root.is_dir():
        raise LungpriorError(f"{root}: images folder not found")
    index: dict[str, Path] = {}
    seen: set[str] = set()
    stack = [root.resolve()]
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True, disable=not progress)
    with bar:
        task = bar.add_task("indexing images", total=None)
        while stack:
            folder = stack.pop()
            real = os.path.realpath(folder)
            if real in seen:  # a linked folder seen before: do not loop
                continue
            seen.add(real)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                raise LungpriorError(f"{folder}: cannot list folder ({exc.strerror})") from None
            subfolders = []
            for entry in entries:
                if entry.is_dir():
                    subfolders.append(Path(entry.path))
                elif entry.is_file():
                    index.setdefault(entry.name, Path(entry.path))
            stack.extend(reversed(subfolders))
            bar.update(task, description=f"indexing images: {len(index)} files")
    return index


def curate_nih(
    labels: PathLike | pd.DataFrame, *, images_dir: PathLike | None = None, train_list: PathLike | None = None,
    test_list: PathLike | None = None, val_fraction: float = 0.1, test_fraction: float = 0.2,
    no_finding_ratio: float | None = None, views: str | Sequence[str] = NIH_VIEWS, seed: int = 0,
    progress: bool = False,
) -> NihCuration:
    """Curate the label table (a path, or a frame from `read_nih_table`) into a patient-disjoint manifest."""
    view_set = parse_views(views)
    official = _check_options(train_list, test_list, val_fraction, test_fraction, no_finding_ratio)
    if isinstance(labels, pd.DataFrame):
        source, table = None, _validate_table(labels, "label table")
    else:
        source, table = str(labels), read_nih_table(labels)
    rows = _parse_rows(table)
    valid = rows["invalid"] == ""
    reason = pd.Series("", index=rows.index, dtype=object)
    _exclude(reason, ~valid, "invalid_row")
    _exclude(reason, rows["other_only"], "other_findings_only")
    _exclude(reason, ~rows["view"].isin(view_set), "view_not_selected")

    extra: dict[str, Any] = {}
    if official:
        split, extra["list_entries_not_in_table"] = _official_splits(
            rows, valid, train_list, test_list, val_fraction, seed
        )
        _exclude(reason, split == "", "not_in_split_lists")
    else:
        fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
        assignment = patient_split(rows.loc[valid, "patient_id"].tolist(), fractions, seed)
        split = rows["patient_id"].map(assignment).fillna("").astype(object)

    paths = "images/" + rows["image_id"].astype(object)
    missing_ids: list[str] = []
    if images_dir is not None:
        index = index_images(images_dir, progress=progress)
        paths = rows["image_id"].map({name: str(p) for name, p in index.items()})
        missing = (reason == "") & paths.isna()
        _exclude(reason, missing, "missing_file")
        missing_ids = rows.loc[missing, "image_id"].tolist()

    if no_finding_ratio is not None:
        dropped = _subsample_no_finding(rows, reason == "", split, no_finding_ratio, seed)
        _exclude(reason, dropped, "no_finding_subsampled")

    kept = reason == ""
    if images_dir is not None and kept.any():
        rows.loc[kept, "spacing"], extra["image_size_unreadable"] = _stored_spacing(table[kept], paths[kept])
    extra["spacing_of"] = "stored image size (file headers)" if images_dir is not None else "1024-px release"
    if not kept.any():
        counts = {r: int((reason == r).sum()) for r in EXCLUSION_REASONS if (reason == r).any()}
        raise LungpriorError(f"{source or 'label table'}: no images left after curation (excluded: {counts})")
    manifest = _build_manifest(rows[kept], paths[kept], split[kept])
    given = {"labels": source, "images_dir": images_dir, "train_list": train_list, "test_list": test_list}
    settings = {
        **{k: None if v is None else str(v) for k, v in given.items()},
        "split_method": "official lists" if official else "patient_split", "val_fraction": val_fraction,
        "test_fraction": None if official else test_fraction, "no_finding_ratio": no_finding_ratio,
        "views": list(view_set), "seed": seed,
    }
    summary = _summarise(manifest, rows, reason, settings, missing_ids, extra)
    return NihCuration(manifest=manifest, summary=summary)


def write_curation(result: NihCuration, out_dir: PathLike) -> tuple[Path, Path]:
    """Write `out_dir/manifest.csv` and `out_dir/summary.json` atomically; return their paths."""
    out = Path(out_dir)
    manifest_path, summary_path = out / "manifest.csv", out / "summary.json"
    try:
        write_manifest(result.manifest, manifest_path)
        write_json(summary_path, result.summary)
    except OSError as exc:
        raise LungpriorError(f"{out}: cannot write the curation ({exc.strerror or exc})") from None
    return manifest_path, summary_path


def _validate_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    table = table.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        found = ", ".join(map(repr, list(table.columns)[:6]))
        raise ManifestError(f"{source}: missing column(s) {', '.join(missing)} (found {found})")
    if table.empty:
        raise ManifestError(f"{source}: the label table has no rows")
    table = table.reset_index(drop=True)
    for column in (*REQUIRED_COLUMNS, SPACING_COLUMN):
        if column in table.columns:
            table[column] = table[column].fillna("").astype(str).str.strip()
    ids = table["Image Index"]
    if (ids == "").any():
        raise ManifestError(f"{source}: row {int((ids == '').to_numpy().argmax()) + 2} has an empty Image Index")
    duplicated = ids[ids.duplicated()]
    if not duplicated.empty:
        raise ManifestError(f"{source}: Image Index {duplicated.iloc[0]} appears more than once")
    return table


def _parse_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per-image flags: the six label tokens, positives, other-only, the view, spacing, invalid reason."""
    tokens = table["Finding Labels"].str.split("|").explode().str.strip()
    tokens = tokens[tokens != ""]

    def any_of(mask: pd.Series) -> pd.Series:
        return mask.groupby(level=0).any().reindex(table.index, fill_value=False).astype(bool)

    rows = pd.DataFrame({"image_id": table["Image Index"], "patient_id": table["Patient ID"],
                         "view": table["View Position"].str.upper()}, index=table.index)
    for label in LABELS:
        rows[label] = any_of(tokens == label)
    rows["positive"] = rows[list(FINDINGS)].any(axis=1)
    other = any_of(~tokens.isin(LABELS))
    no_tokens = ~any_of(tokens.notna())
    text = table[SPACING_COLUMN] if SPACING_COLUMN in table.columns else pd.Series("", index=table.index)
    rows["spacing"] = png_spacing(table, pd.to_numeric(text, errors="coerce"))
    invalid = pd.Series("", index=table.index, dtype=object)
    invalid[rows["spacing"].isna() & (text != "")] = f"non-numeric {SPACING_COLUMN}"
    invalid[rows[NO_FINDING] & (rows["positive"] | other)] = "No Finding together with other labels"
    invalid[no_tokens] = "empty Finding Labels"
    invalid[rows["patient_id"] == ""] = "empty Patient ID"
    rows["invalid"] = invalid
    rows["no_finding"] = rows[NO_FINDING] & (invalid == "")
    rows["other_only"] = other & ~rows["positive"] & ~rows[NO_FINDING]
    return rows


def png_spacing(table: pd.DataFrame, spacing_x: pd.Series, stored: pd.DataFrame | None = None) -> pd.Series:
    """Pixel spacing of the stored image, in mm (mean of its x and y spacing).

    The table's `OriginalImagePixelSpacing` is that of the original image (e.g. 2500 x 2048 px at 0.143 mm);
    an image stored at w x h pixels has spacing original spacing x original size / stored size, per axis.
    `stored` (columns `width`, `height`, NaN where unknown) defaults to the released 1024 x 1024 PNGs.
    Without the size columns the original spacing is kept.
    """
    width = pd.to_numeric(table.get("OriginalImage[Width"), errors="coerce")
    height = pd.to_numeric(table.get("Height]"), errors="coerce")
    spacing_y = pd.to_numeric(table.get("y]"), errors="coerce")
    if width is None or height is None:
        return spacing_x
    spacing_y = spacing_x if spacing_y is None else spacing_y.fillna(spacing_x)
    stored_w = stored_h = pd.Series(float(NIH_PNG_SIZE), index=table.index)
    if stored is not None:
        stored_w = stored["width"].reindex(table.index).fillna(NIH_PNG_SIZE)
        stored_h = stored["height"].reindex(table.index).fillna(NIH_PNG_SIZE)
    scaled = (spacing_x * width / stored_w + spacing_y * height / stored_h) / 2
    return scaled.where(width.notna() & height.notna(), spacing_x)


def _stored_spacing(table: pd.DataFrame, paths: pd.Series) -> tuple[pd.Series, list[str]]:
    """Spacing of each stored image (size from its header) and the ids whose size could not be read."""
    sizes = pd.DataFrame(float("nan"), index=table.index, columns=["width", "height"])
    unreadable: list[str] = []
    for idx, path in paths.items():
        try:
            sizes.loc[idx, "height"], sizes.loc[idx, "width"] = image_size(path)
        except ImageReadError:
            unreadable.append(str(table.at[idx, "Image Index"]))  # spacing of the 1024-px release assumed
    text = table[SPACING_COLUMN] if SPACING_COLUMN in table.columns else pd.Series("", index=table.index)
    return png_spacing(table, pd.to_numeric(text, errors="coerce"), sizes), unreadable


def _official_splits(
    rows: pd.DataFrame, valid: pd.Series, train_list: PathLike, test_list: PathLike, val_fraction: float, seed: int
) -> tuple[pd.Series, int]:
    """Split from the official lists: test list → test; train_val list → train/val by patient."""
    train_val, test = set(read_image_list(train_list)), set(read_image_list(test_list))
    both = sorted(train_val & test)
    if both:
        raise ManifestError(f"{test_list}: image {both[0]} is also in {train_list} ({len(both)} image(s) in both)")
    in_test = rows["image_id"].isin(test)
    listed = valid & (in_test | rows["image_id"].isin(train_val))
    groups = pd.DataFrame({"patient_id": rows["patient_id"], "split": in_test.map({True: "test", False: "train_val"})})
    try:
        check_patient_disjoint(groups[listed])
    except ManifestError as exc:
        raise ManifestError(f"{train_list} and {test_list} disagree: {exc}") from None
    fractions = {"train": 1 - val_fraction, "val": val_fraction}
    assignment = patient_split(rows.loc[listed & ~in_test, "patient_id"].tolist(), fractions, seed)
    split = rows["patient_id"].map(assignment).fillna("").astype(object)
    split[listed & in_test] = "test"
    split[~listed] = ""
    return split, len((train_val | test) - set(rows["image_id"]))


def _subsample_no_finding(rows: pd.DataFrame, keep: pd.Series, split: pd.Series, ratio: float, seed: int) -> pd.Series:
    """Mask of No Finding images to drop so each split keeps round(ratio × positives), by whole patients."""
    drop = pd.Series(False, index=rows.index)
    for name in SPLITS:
        in_split = keep & (split == name)
        target = math.floor(ratio * int((in_split & rows["positive"]).sum()) + 0.5)
        candidates = in_split & rows["no_finding"]
        sizes = rows.loc[candidates, "patient_id"].value_counts().to_dict()
        chosen: set[str] = set()
        left = target
        for patient in seeded_order(sizes, seed, salt=f"no_finding:{name}"):
            if left == 0:
                break
            if sizes[patient] <= left:
                chosen.add(patient)
                left -= sizes[patient]
        drop |= candidates & ~rows["patient_id"].isin(chosen)
    return drop


def _build_manifest(kept: pd.DataFrame, paths: pd.Series, split: pd.Series) -> pd.DataFrame:
    manifest = pd.DataFrame(
        {"image_id": kept["image_id"], "path": paths, "patient_id": kept["patient_id"], "view": kept["view"],
         "split": split, **{label: kept[label].astype("int64") for label in FINDINGS}}
    )
    manifest[NO_FINDING] = derive_no_finding(manifest)
    manifest["pixel_spacing_mm"] = kept["spacing"]
    return manifest.reset_index(drop=True)


def _summarise(
    manifest: pd.DataFrame, rows: pd.DataFrame, reason: pd.Series, settings: dict[str, Any],
    missing_ids: list[str], extra: dict[str, Any],
) -> dict[str, Any]:
    by_split = {name: manifest[manifest["split"] == name] for name in SPLITS}

    def per_split(count: Any) -> dict[str, int]:
        values = {name: int(count(part)) for name, part in by_split.items()}
        return {**values, "total": int(count(manifest))}

    excluded = {r: int((reason == r).sum()) for r in EXCLUSION_REASONS}
    invalid = rows.loc[rows["invalid"] != "", ["image_id", "invalid"]]
    return {
        "settings": settings,
        "table": {"images": len(rows), "patients": int(rows["patient_id"].nunique())},
        "images": per_split(len),
        "patients": per_split(lambda part: part["patient_id"].nunique()),
        "images_with_any_finding": per_split(lambda part: (part[list(FINDINGS)].sum(axis=1) > 0).sum()),
        "label_counts": {label: per_split(lambda part, lab=label: part[lab].sum()) for label in LABELS},
        "excluded": {**excluded, "total": sum(excluded.values())},
        "missing_files": missing_ids,
        "invalid_rows": dict(zip(invalid["image_id"], invalid["invalid"], strict=True)),
        **extra,
    }


def _check_options(
    train_list: PathLike | None, test_list: PathLike | None, val_fraction: float, test_fraction: float,
    no_finding_ratio: float | None,
) -> bool:
    """Validate the numeric options; return whether the official lists are used."""
    if (train_list is None) != (test_list is None):
        raise LungpriorError("give both the train_val list and the test list, or neither")
    official = train_list is not None
    if not 0 <= val_fraction < 1:
        raise LungpriorError(f"val fraction must be in [0, 1), got {val_fraction}")
    if not official and not 0 <= test_fraction < 1 - val_fraction:
        raise LungpriorError(f"test fraction must be in [0, 1 - val fraction), got {test_fraction}, val {val_fraction}")
    if no_finding_ratio is not None and not (math.isfinite(no_finding_ratio) and no_finding_ratio >= 0):
        raise LungpriorError(f"no-finding ratio must be a finite number >= 0, got {no_finding_ratio}")
    return official


def _exclude(reason: pd.Series, mask: pd.Series, name: str) -> None:
    reason[(reason == "") & mask] = name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
