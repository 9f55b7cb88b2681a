"""The on-disk input cache: every image decoded, masked and resized once into a uint8 memmap.

Layout of `<cache_root>/<key>/`: `images.npy` (N, S, S) uint8 masked images, `masks.npy` (N, S, S) uint8 the
fraction (x 255) of each pixel covered by the tight lung mask (only when lung masks are known; cropped like the
image in `crop` mode), `prior.npy` (N, S, S) uint8 the coverage of the region where a `prior-loss` run
allows attention (that mode only), `index.csv` (row -> image_id), `unusable.csv` (image_id, reason: films
whose lung mask is empty, left blank in the arrays and left out of every dataset), `meta.json`, and the `done`
marker written last. The key is the SHA-256 of everything that determines the pixels: per image its id, path,
size, mtime, pixel spacing and mask file (path, size, mtime); the image size; `MaskSpec.pixel_key()`;
`CACHE_VERSION`. A build happens in `<key>.partial` under a file lock and is renamed into place when complete,
so a cache without `done` is never used and a build killed half-way restarts cleanly.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.progress import Progress

from lungprior.data.atomic import atomic_open, output_dir, output_errors, write_json
from lungprior.data.io import read_image, read_mask
from lungprior.data.manifest import resolve
from lungprior.errors import LungpriorError, NoUsableMaskError
from lungprior.layout import mask_path_for
from lungprior.masks import MaskSpec, apply_prior, crop_region, penalty_region, prior_weight, tight_mask

CACHE_VERSION = 2  # 2: films without a usable lung mask are listed in unusable.csv, in every mode
UNUSABLE = "unusable.csv"
_CHUNK = 32
_PARALLEL_MIN_ITEMS = 256


@dataclass(frozen=True)
class ItemSource:
    """Where one cached row comes from."""

    image_id: str
    image_path: str
    mask_path: str | None
    spacing_mm: float | None


@dataclass(frozen=True)
class CacheInfo:
    """A complete cache: folder, key, rows, image size, whether lung masks are stored, and the build."""

    path: Path
    key: str
    n: int
    image_size: int
    has_masks: bool
    built: bool
    seconds: float
    unusable: tuple[tuple[str, str], ...] = ()  # (image_id, reason): films without a usable lung mask

    @property
    def images_path(self) -> Path:
        return self.path / "images.npy"

    @property
    def masks_path(self) -> Path:
        return self.path / "masks.npy"

    @property
    def prior_path(self) -> Path:
        """The `prior-loss` region coverage (exists for that mode only)."""
        return self.path / "prior.npy"


def item_sources(manifest: pd.DataFrame, masks_dir: str | os.PathLike[str] | None, spec: MaskSpec) -> list[ItemSource]:
    """One `ItemSource` per manifest row; a missing lung mask (when needed) raises naming the image."""
    if spec.needs_mask and masks_dir is None:
        raise LungpriorError(
            f"--mode {spec.mode} needs lung masks: pass --masks DIR (no masks/ folder beside the manifest)"
        )
    out = []
    columns = (manifest["image_id"], manifest["path"], manifest["pixel_spacing_mm"])
    for image_id, rel, spacing in zip(*columns, strict=True):
        mask = None
        if masks_dir is not None:
            mask = mask_path_for(masks_dir, str(image_id))
            if not mask.is_file():
                raise LungpriorError(f"image {image_id}: lung mask not found, expected {mask}")
        sp = float(spacing) if pd.notna(spacing) else None
        out.append(ItemSource(str(image_id), str(resolve(manifest, rel)), str(mask) if mask else None, sp))
    return out


def cache_key(sources: Sequence[ItemSource], image_size: int, spec: MaskSpec) -> str:
    """SHA-256 of everything that determines the cached pixels; a missing image raises naming it."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "size": image_size, "spec": spec.pixel_key()}).encode())
    for s in sources:
        parts: list[object] = [s.image_id, s.image_path, *_stat(s.image_id, s.image_path, "image"), s.spacing_mm]
        if s.mask_path is not None:
            parts += [s.mask_path, *_stat(s.image_id, s.mask_path, "lung mask")]
        h.update(json.dumps(parts).encode())
        h.update(b"\n")
    return h.hexdigest()


def ensure_cache(
    sources: Sequence[ItemSource],
    image_size: int,
    spec: MaskSpec,
    cache_root: str | os.PathLike[str],
    *,
    processes: int | None = None,
    progress: bool = True,
) -> CacheInfo:
    """Return the complete cache for these rows, building it first if needed (concurrent callers wait)."""
    if not sources:
        raise LungpriorError("nothing to cache: the manifest has no rows")
    key = cache_key(sources, image_size, spec)
    root = Path(cache_root)
    final = root / key
    has_masks = sources[0].mask_path is not None
    if (final / "done").is_file():  # a complete cache is only read: it may sit in a read-only folder
        return _info(final, key, len(sources), image_size, has_masks, built=False, seconds=0.0)
    hint = "choose a writable cache folder with --cache"
    output_dir(root, "cache folder", hint=hint)
    with output_errors(root, hint), _locked(root / f"{key}.lock"):
        if (final / "done").is_file():  # another process finished it while we waited
            return _info(final, key, len(sources), image_size, has_masks, built=False, seconds=0.0)
        start = time.perf_counter()
        partial = root / f"{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        _build(partial, sources, image_size, spec, has_masks, processes, progress)
        seconds = time.perf_counter() - start
        write_json(partial / "done", {"key": key, "rows": len(sources), "build_seconds": round(seconds, 3)})
        os.replace(partial, final)
    return _info(final, key, len(sources), image_size, has_masks, built=True, seconds=seconds)


def render_item(src: ItemSource, image_size: int, spec: MaskSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode, mask (at the image's own resolution) and resize one image: uint8 (S, S) image and lung coverage.

    The image is squashed to S x S (aspect not kept) with PIL's antialiased bilinear filter; the tight lung
    mask is resized with the same filter, so a masked-out pixel (coverage 0) stays exactly 0 in zero fill.
    In `crop` mode image and lung mask are first cropped to the same box.
    """
    image, coverage, _ = render_item_with_prior(src, image_size, spec)
    return image, coverage


def render_item_with_prior(
    src: ItemSource, image_size: int, spec: MaskSpec
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`render_item` plus the resized `prior-loss` region coverage (None in other modes)."""
    image, _ = read_image(src.image_path)
    lungs = read_mask(src.mask_path, shape=image.shape) if src.mask_path is not None else None
    where = f" ({src.mask_path})" if src.mask_path else ""
    try:
        return render_arrays(image, lungs, image_size, spec, src.spacing_mm)
    except NoUsableMaskError as exc:  # a film left out of every mode's run, named by its mask file
        raise NoUsableMaskError(f"{exc}{where}") from None
    except LungpriorError as exc:
        raise LungpriorError(f"image {src.image_id}: {exc}{where}") from None


def render_arrays(
    image: np.ndarray, lungs: np.ndarray | None, image_size: int, spec: MaskSpec, spacing_mm: float | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`render_item_with_prior` on arrays already read: float [0, 1] image and bool lung mask of the same size."""
    coverage = prior = None
    if lungs is not None:
        tight = tight_mask(lungs)
        if not tight.any():  # in every mode, so runs with and without a mask prior see the same films
            raise NoUsableMaskError("empty lung mask")
        weight = prior_weight(lungs, spec, spacing_mm)
        box = crop_region(lungs, spec, spacing_mm)
        allowed = penalty_region(lungs, spec, spacing_mm)
        image = apply_prior(image, weight, spec.fill)
        if box is not None:
            image, tight = image[box], tight[box]
        coverage = _to_uint8(_resize(tight.astype(np.float32), image_size))
        if allowed is not None:
            prior = _to_uint8(_resize(allowed.astype(np.float32), image_size))
    elif spec.needs_mask:
        raise LungpriorError(f"--mode {spec.mode} needs a lung mask")
    return _to_uint8(_resize(image, image_size)), coverage, prior


def open_cache(info: CacheInfo) -> tuple[np.ndarray, np.ndarray | None]:
    """Read-only memmaps of the cached images and lung coverage (None without masks)."""
    images = np.load(info.images_path, mmap_mode="r")
    masks = np.load(info.masks_path, mmap_mode="r") if info.has_masks else None
    return images, masks


def _build(
    folder: Path,
    sources: Sequence[ItemSource],
    size: int,
    spec: MaskSpec,
    has_masks: bool,
    processes: int | None,
    progress: bool,
) -> None:
    folder.mkdir(parents=True)
    n = len(sources)
    extra = ("prior.npy",) if spec.mode == "prior-loss" else ()
    for name in ("images.npy", *(("masks.npy",) if has_masks else ()), *extra):
        arr = np.lib.format.open_memmap(folder / name, mode="w+", dtype=np.uint8, shape=(n, size, size))
        arr.flush()
        del arr
    chunks = [
        (folder, list(range(i, min(i + _CHUNK, n))), sources[i : i + _CHUNK], size, spec) for i in range(0, n, _CHUNK)
    ]
    if processes is None:
        processes = min(os.cpu_count() or 1, 4) if n >= _PARALLEL_MIN_ITEMS else 1
    errors: list[str] = []
    unusable: list[tuple[str, str]] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"caching {n} images at {size}px ({spec.pixel_key()})", total=n)
        if processes <= 1:
            results: Iterator[tuple[int, list[str], list[tuple[str, str]]]] = map(_fill_chunk, chunks)
            for done, errs, skipped in results:
                errors += errs
                unusable += skipped
                bar.advance(task, done)
        else:
            with mp.get_context("fork").Pool(processes) as pool:
                for done, errs, skipped in pool.imap_unordered(_fill_chunk, chunks):
                    errors += errs
                    unusable += skipped
                    bar.advance(task, done)
    if errors:
        raise LungpriorError(f"{len(errors)} image(s) could not be cached; first: {errors[0]}")
    with atomic_open(folder / UNUSABLE, "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(sorted(unusable), columns=["image_id", "reason"]).to_csv(fh, index=False)
    with atomic_open(folder / "index.csv", "w", encoding="utf-8", newline="") as fh:
        pd.DataFrame({"row": range(n), "image_id": [s.image_id for s in sources]}).to_csv(fh, index=False)
    write_json(
        folder / "meta.json",
        {"version": CACHE_VERSION, "image_size": size, "mask_spec": spec.pixel_key(), "rows": n,
         "has_masks": has_masks},
    )


def _fill_chunk(
    args: tuple[Path, list[int], Sequence[ItemSource], int, MaskSpec],
) -> tuple[int, list[str], list[tuple[str, str]]]:
    """Render a chunk of rows into the memmaps; per-item errors and films without a usable mask are returned."""
    folder, rows, sources, size, spec = args
    images = np.load(folder / "images.npy", mmap_mode="r+")
    masks = np.load(folder / "masks.npy", mmap_mode="r+") if (folder / "masks.npy").is_file() else None
    priors = np.load(folder / "prior.npy", mmap_mode="r+") if (folder / "prior.npy").is_file() else None
    errors = []
    unusable = []
    for row, src in zip(rows, sources, strict=True):
        try:
            image, coverage, prior = render_item_with_prior(src, size, spec)
        except NoUsableMaskError as exc:
            unusable.append((src.image_id, str(exc)))
            continue
        except LungpriorError as exc:
            text = str(exc)
            errors.append(text if src.image_id in text else f"image {src.image_id}: {text}")
            continue
        images[row] = image
        if masks is not None and coverage is not None:
            masks[row] = coverage
        if priors is not None and prior is not None:
            priors[row] = prior
    for arr in (images, masks, priors):
        if arr is not None:
            arr.flush()
    return len(rows), errors, unusable


def _stat(image_id: str, path: str, what: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else (exc.strerror or str(exc))
        raise LungpriorError(f"image {image_id}: {what} {path}: {reason}") from None
    return st.st_size, st.st_mtime_ns


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    if arr.shape == (size, size):
        return arr.astype(np.float32, copy=False)
    im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32))
    return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _info(path: Path, key: str, n: int, size: int, has_masks: bool, *, built: bool, seconds: float) -> CacheInfo:
    unusable: tuple[tuple[str, str], ...] = ()
    if (path / UNUSABLE).is_file():
        table = pd.read_csv(path / UNUSABLE, dtype=str, keep_default_na=False)
        unusable = tuple(zip(table["image_id"], table["reason"], strict=True))
    return CacheInfo(path=path, key=key, n=n, image_size=size, has_masks=has_masks, built=built, seconds=seconds,
                     unusable=unusable)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if needed), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
