"""CheXmask lung and heart masks (HybridGNet, Gaggion et al.) in the layout every lungprior command reads.

The CheXmask tables hold per film `Image ID`, `Dice RCA (Mean)`, `Left Lung`, `Right Lung`, `Heart` (run-length
encoded), `Height` and `Width`. Its run-length code, as CheXmask's own decoder reads it: space-separated integers
taken in pairs (start, length); starts count from 1 over the mask flattened in row-major (C) order, i.e.
pixel k (0-based) of the flat array is row k // Width, column k % Width; every run is set. An empty cell is an
empty mask. `convert_chexmask` writes `OUT/masks/<id>.png` (both lungs) and `OUT/heart/<id>.png`, scaled to each
stored film's size (nearest neighbour), `OUT/excluded.csv` (films left out and why), `OUT/masks.csv` (image id
-> mask file) and `OUT/chexmask.json`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lungprior.data.atomic import atomic_open, write_json
from lungprior.data.io import image_size, write_mask
from lungprior.data.limits import check_pixels
from lungprior.data.manifest import read_manifest, resolve
from lungprior.data.regular import require_regular_file
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.layout import CHEXMASK_FILE, MASKS_DIR, mask_name

ID, RCA, LEFT, RIGHT, HEART, HEIGHT, WIDTH = (
    "Image ID", "Dice RCA (Mean)", "Left Lung", "Right Lung", "Heart", "Height", "Width",
)
COLUMNS: tuple[str, ...] = (ID, RCA, LEFT, RIGHT, HEART, HEIGHT, WIDTH)
DEFAULT_MIN_RCA = 0.7
HEART_DIR = "heart"
EXCLUDED_FILE = "excluded.csv"
#: image id -> mask file of every film that has a mask (the ids that are not plain file names get a safe name).
MASKS_TABLE = "masks.csv"
_CHUNK_ROWS = 2000


class RleError(LungpriorError):
    """A run-length code that cannot be decoded."""


def decode_rle(rle: object, height: int, width: int) -> np.ndarray:
    """Decode one CheXmask run-length code to a bool (height, width) mask (see the module docstring)."""
    if height < 1 or width < 1:
        raise RleError(f"mask size {height}x{width} is not positive")
    try:  # the size gate, before anything is allocated
        check_pixels("CheXmask mask", width, height)
    except ImageReadError as exc:
        raise RleError(exc.reason) from None
    mask = np.zeros(height * width, dtype=bool)
    if rle is None or (isinstance(rle, float) and np.isnan(rle)) or not str(rle).strip():
        return mask.reshape(height, width)
    try:
        runs = np.array([int(token) for token in str(rle).split()], dtype=np.int64)
    except ValueError:
        raise RleError(f"not a list of integers ({str(rle)[:40]!r})") from None
    except OverflowError:
        raise RleError(f"a value is too large for a {height}x{width} mask ({str(rle)[:40]!r})") from None
    if runs.size % 2:
        raise RleError(f"odd number of values ({runs.size}): starts and lengths must come in pairs")
    starts, lengths = runs[0::2] - 1, runs[1::2]
    if (starts < 0).any() or (lengths < 0).any():
        raise RleError("a start below 1 or a negative length")
    if (starts > mask.size).any() or (lengths > mask.size).any() or (starts + lengths > mask.size).any():
        raise RleError(f"a run ends past the {height}x{width} mask")
    for s, n in zip(starts.tolist(), lengths.tolist(), strict=True):
        mask[s : s + n] = True
    return mask.reshape(height, width)


@dataclass
class ChexmaskResult:
    """Where the masks went and how many films got one, were left out, or were done before."""

    out_dir: Path
    masks_dir: Path
    written: int
    skipped: int
    excluded: int
    excluded_path: Path


def convert_chexmask(
    csv: str | os.PathLike[str], manifest: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
    min_rca: float = DEFAULT_MIN_RCA,
) -> ChexmaskResult:
    """Write CheXmask's masks of the manifest's films into `out_dir` (a rerun skips films already written).

    Left out, with the reason in `excluded.csv`: rows below `min_rca`, rows whose id is not in the manifest,
    ids listed more than once, undecodable rows (sizes through the size gate `check_pixels`), films that cannot
    be read, and manifest films without a CheXmask row. A film left out has no mask in `masks/` or `heart/`
    (a rerun with a stricter `min_rca` removes the ones an earlier run wrote). `masks.csv` maps each image id
    to its mask file (ids that are not plain file names get a safe name, see `lungprior.data.safename`).
    """
    if not 0.0 <= min_rca <= 1.0:
        raise LungpriorError(f"--min-rca must be in [0, 1], got {min_rca}")
    df = read_manifest(manifest, labels=False)
    films = {mask_name(i): (str(i), resolve(df, p)) for i, p in zip(df["image_id"], df["path"], strict=True)}
    out = Path(out_dir)
    masks_dir, heart_dir = out / MASKS_DIR, out / HEART_DIR
    masks_dir.mkdir(parents=True, exist_ok=True)
    heart_dir.mkdir(parents=True, exist_ok=True)
    repeated = _repeated_ids(Path(csv))
    excluded: list[dict[str, str]] = []
    kept: dict[str, str] = {}
    seen: set[str] = set()
    written = skipped = 0
    for row in _rows(Path(csv)):
        name = mask_name(str(row[ID]))
        if name not in films:
            excluded.append({"image_id": str(row[ID]), "reason": "not in the manifest"})
            continue
        image_id, path = films[name]
        if name in seen:
            continue  # a repeated id: excluded once, below
        seen.add(name)
        reason = _quality_reason(row[RCA], min_rca) or _repeat_reason(name, repeated)
        if not reason:
            reason, done = _write_film(row, path, masks_dir / name, heart_dir / name)
            written, skipped = written + (done == "written"), skipped + (done == "skipped")
        if reason:
            excluded.append({"image_id": image_id, "reason": reason})
            _remove(masks_dir / name, heart_dir / name)
        else:
            kept[image_id] = f"{MASKS_DIR}/{name}"
    for n in films:
        if n not in seen:
            excluded.append({"image_id": films[n][0], "reason": "no CheXmask row"})
            _remove(masks_dir / n, heart_dir / n)
    excluded_path = out / EXCLUDED_FILE
    with atomic_open(excluded_path, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(excluded, columns=["image_id", "reason"]).to_csv(fh, index=False)
    with atomic_open(out / MASKS_TABLE, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(list(kept.items()), columns=["image_id", "file"]).to_csv(fh, index=False)
    stat = Path(csv).stat()
    write_json(out / CHEXMASK_FILE, {"csv": str(Path(csv).resolve()), "csv_size": stat.st_size,
                                     "min_rca": min_rca, "masks": written + skipped, "excluded": len(excluded)})
    return ChexmaskResult(out, masks_dir, written, skipped, len(excluded), excluded_path)


def _write_film(row: dict[str, object], film: Path, lung_path: Path, heart_path: Path) -> tuple[str, str]:
    """("", "written" or "skipped") when the film's masks exist, else (the reason it has none, "")."""
    if lung_path.is_file() and heart_path.is_file():
        return "", "skipped"
    try:
        h, w = _size(row[HEIGHT]), _size(row[WIDTH])
        lungs = decode_rle(row[LEFT], h, w) | decode_rle(row[RIGHT], h, w)
        heart = decode_rle(row[HEART], h, w)
    except (RleError, ValueError, TypeError, OverflowError) as exc:
        return f"undecodable: {exc}", ""
    try:
        size = image_size(film)
    except ImageReadError as exc:
        return f"film unreadable: {exc.reason}", ""
    write_mask(heart_path, _scaled(heart, size))
    write_mask(lung_path, _scaled(lungs, size))  # last: a film is done when its lung mask exists
    return "", "written"


def _size(value: object) -> int:
    """A Height or Width cell as a whole number (`ValueError` for text, NaN or fractions)."""
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number) or number != int(number):
        raise ValueError(f"mask size {value!r} is not a whole number")
    return int(number)


def _repeated_ids(path: Path) -> dict[str, int]:
    """Mask names listed more than once in the table, with their counts (each such film is left out)."""
    counts: dict[str, int] = {}
    for row in _rows(path, columns=(ID,)):
        name = mask_name(str(row[ID]))
        counts[name] = counts.get(name, 0) + 1
    return {name: n for name, n in counts.items() if n > 1}


def _repeat_reason(name: str, repeated: dict[str, int]) -> str:
    return f"Image ID listed {repeated[name]} times in the CheXmask table" if name in repeated else ""


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _rows(path: Path, columns: tuple[str, ...] = COLUMNS) -> Iterator[dict[str, object]]:
    """The table's rows, read in chunks (the NIH table is large); a missing column is one clear error."""
    require_regular_file(path, "CheXmask")
    try:
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise LungpriorError(f"{path}: not a CheXmask table (missing columns: {', '.join(missing)})")
        types = {c: str for c in (ID, LEFT, RIGHT, HEART) if c in columns}
        for chunk in pd.read_csv(path, usecols=list(columns), dtype=types, chunksize=_CHUNK_ROWS):
            yield from chunk.to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise LungpriorError(f"{path}: not a readable CSV ({str(exc).splitlines()[0] if str(exc) else exc})") from None


def _quality_reason(value: object, min_rca: float) -> str:
    try:
        rca = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"Dice RCA (Mean) {value!r} is not a number"
    if not np.isfinite(rca):
        return "Dice RCA (Mean) missing"
    return f"Dice RCA (Mean) {rca:.3f} < {min_rca:g}" if rca < min_rca else ""


def _scaled(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(im) > 127
