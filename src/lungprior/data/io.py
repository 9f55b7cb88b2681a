"""Image and mask I/O: PNG, JPEG, TIFF and DICOM to a float32 [0, 1] array, bright = dense.

Grey-level images are scaled by the maximum of their bit depth (a 16-bit PNG by 65535), never min-max,
except DICOM, which goes through its modality and VOI transforms (see `lungprior.data.dicom`).
Every failure raises `ImageReadError(path, reason)`, an image over the pixel limit included (checked from the
header before decoding, see `lungprior.data.limits`). Pixels are converted in float32, in place where possible.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from lungprior.data.atomic import atomic_path
from lungprior.data.dicom import read_dicom
from lungprior.data.limits import check_pixels, max_pixels, over_limit
from lungprior.data.regular import open_regular, regular_file_problem
from lungprior.errors import ImageReadError, LungpriorError, one_line

#: Recognised extensions; "" stands for extension-less DICOM files (checked by content).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom", "")
FORMATS: tuple[str, ...] = ("png", "jpeg", "tiff", "dicom")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_DICOM_SUFFIXES = (".dcm", ".dicom", "")
_LUMA = np.array([0.299, 0.587, 0.114])
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


@dataclass(frozen=True)
class ImageMeta:
    """What was read: format, returned shape (H, W), stored bits, spacing when known, photometric/mode."""

    path: str
    format: str
    shape: tuple[int, int]
    bit_depth: int
    pixel_spacing_mm: float | None
    photometric: str | None


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, ImageMeta]:
    """Read an image as a float32 2-D array in [0, 1] (bone white) and its metadata."""
    fmt, head = _sniff(path)
    try:
        if fmt == "dicom":
            px = read_dicom(path, force=head[128:132] != b"DICM")
            image, bits, spacing, photometric = px.image, px.bit_depth, px.pixel_spacing_mm, px.photometric
        elif fmt == "tiff":
            image, bits, photometric = _read_tiff(path)
            spacing = None
        else:
            image, bits, photometric = _read_pil(path, fmt, head)
            spacing = None
        image = _finish(path, image)
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode this image") from None
    meta = ImageMeta(
        path=str(path),
        format=fmt,
        shape=(int(image.shape[0]), int(image.shape[1])),
        bit_depth=int(bits),
        pixel_spacing_mm=spacing,
        photometric=photometric,
    )
    return image, meta


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of an image from its header alone (no pixel is decoded), through the size gate
    (`check_pixels`: the pixel limit, positive sides, aspect); `ImageReadError` on failure."""
    fmt, _ = _sniff(path)
    try:
        if fmt == "dicom":
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            size = int(ds.Rows), int(ds.Columns)
        elif fmt == "tiff":
            with tifffile.TiffFile(path) as tif:
                page = tif.series[0].keyframe
                size = int(page.imagelength), int(page.imagewidth)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                Image.MAX_IMAGE_PIXELS = max_pixels()  # as `_read_pil`: Pillow refuses 2x the limit itself
                with Image.open(path) as im:
                    size = int(im.size[1]), int(im.size[0])
    except Image.DecompressionBombError:
        raise over_limit(path, f"over {2 * max_pixels() / 1e6:g} MP", max_pixels()) from None
    except Exception as exc:
        raise ImageReadError(path, f"cannot read the image size ({one_line(exc)})") from None
    check_pixels(path, size[1], size[0])
    return size


def read_mask(path: str | os.PathLike[str], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as a bool 2-D array, True where the 8-bit value is >= 128.

    With `shape` (H, W), a mask of another size raises `ImageReadError`.
    """
    raw = read_mask_raw(path)
    if shape is not None and tuple(raw.shape) != tuple(shape):
        got, want = f"{raw.shape[0]}x{raw.shape[1]}", f"{shape[0]}x{shape[1]}"
        raise ImageReadError(path, f"mask size {got} (HxW) differs from image size {want}")
    return raw >= 128


def mask_values(path: str | os.PathLike[str]) -> np.ndarray:
    """Sorted unique values of the mask on the 8-bit scale (to spot masks that are not 0/255)."""
    return np.unique(read_mask_raw(path))


def read_mask_raw(path: str | os.PathLike[str]) -> np.ndarray:
    """The mask as a uint8 2-D array on the 8-bit scale (16-bit masks divided by 257, grey + alpha -> grey)."""
    image, _ = read_image(path)
    return np.rint(image * 255.0).astype(np.uint8)


def write_mask(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Write a 2-D mask as an 8-bit PNG with values 0/255 (non-zero -> 255), atomically."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise LungpriorError(f"{path}: a mask must be 2-D, got shape {arr.shape}")
    _save_png(path, np.where(arr.astype(bool), 255, 0).astype(np.uint8))


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an image as PNG, atomically.

    Float input is clipped to [0, 1] and rounded to uint8; bool becomes 0/255; uint8 and uint16 are
    written as they are. Shapes (H, W), (H, W, 3) and (H, W, 4) are accepted (uint16 only as (H, W)).
    """
    arr = np.asarray(image)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise LungpriorError(f"{path}: cannot write an image of shape {arr.shape} as PNG")
    if arr.dtype == bool:
        arr = np.where(arr, 255, 0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise LungpriorError(f"{path}: cannot write an image with NaN or infinite values")
        arr = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif arr.dtype == np.uint16 and arr.ndim != 2:
        raise LungpriorError(f"{path}: 16-bit PNG output must be 2-D, got shape {arr.shape}")
    elif arr.dtype not in (np.uint8, np.uint16):
        raise LungpriorError(f"{path}: cannot write dtype {arr.dtype} as PNG (use float/bool/uint8/uint16)")
    _save_png(path, np.ascontiguousarray(arr))


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a visible file with a recognised extension, or an extension-less file marked as DICOM."""
    p = Path(path)
    if p.name.startswith(".") or not p.is_file():
        return False
    suffix = p.suffix.lower()
    if suffix and suffix in IMAGE_SUFFIXES:
        return True
    if suffix and not suffix[1:].isdigit():  # DICOM files are often named by UID: "1.2.840.5"
        return False
    try:
        return _head(p)[128:132] == b"DICM"
    except OSError:
        return False


def list_image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder` (not its subfolders), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=lambda p: p.name)


def _sniff(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """Identify the format from the file's first bytes (the extension only decides DICOM without preamble).

    Anything that is not a regular file (a FIFO, a device) is refused before it is opened.
    """
    p = Path(path)
    problem = regular_file_problem(p)
    if problem is not None:
        raise ImageReadError(path, problem)
    try:
        head = _head(p)
    except OSError as exc:
        raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from None
    except LungpriorError as exc:  # swapped for a FIFO after the check
        raise ImageReadError(path, str(exc).removeprefix(f"{p}: ")) from None
    if not head:
        raise ImageReadError(path, "empty file (0 bytes)")
    if head[128:132] == b"DICM":  # first: a DICOM preamble may itself look like a TIFF header
        return "dicom", head
    if head.startswith(_PNG_MAGIC):
        return "png", head
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", head
    if head.startswith(_TIFF_MAGICS):
        return "tiff", head
    suffix = p.suffix.lower()
    if suffix in _DICOM_SUFFIXES or suffix[1:].isdigit():
        return "dicom", head
    kind = f"extension {suffix!r}" if suffix else "no extension"
    raise ImageReadError(path, f"unsupported or corrupt file: not PNG, JPEG, TIFF or DICOM ({kind})")


def _head(p: Path) -> bytes:
    with open_regular(p) as fh:
        return fh.read(132)


def _read_pil(path: str | os.PathLike[str], fmt: str, head: bytes) -> tuple[np.ndarray, int, str]:
    """Decode a PNG/JPEG fully (checksums verified, truncation fails) to grey [0, 1]."""
    limit = max_pixels()
    Image.MAX_IMAGE_PIXELS = limit  # Pillow's own guard then refuses 2x the limit before reading the header out
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked just below
            with Image.open(path) as im:
                check_pixels(path, *im.size)
                im.verify()
            with Image.open(path) as im:
                im.load()
            mode = im.mode
            bits = _png_bit_depth(head) if fmt == "png" else int(getattr(im, "bits", 8) or 8)
            image = _pil_to_gray(im, bits)
    except (ImageReadError, MemoryError):
        raise
    except Image.DecompressionBombError:
        raise over_limit(path, f"over {2 * limit / 1e6:g} MP", limit) from None
    except Exception as exc:
        raise ImageReadError(path, f"corrupt or truncated {fmt.upper()} ({one_line(exc)})") from None
    if image is None:
        raise ImageReadError(path, f"unsupported {fmt.upper()} mode {mode!r}")
    return image, bits, mode


def _pil_to_gray(im: Image.Image, bits: int) -> np.ndarray | None:
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.float32)
    if mode == "L":
        return _divide(np.asarray(im, dtype=np.float32), 255.0)
    if mode == "LA":
        return _divide(np.asarray(im.getchannel(0), dtype=np.float32), 255.0)
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        top = float(2 ** min(max(bits, 1), 16) - 1) if mode == "I" else 65535.0
        return _divide(np.asarray(im, dtype=np.float32), top)
    if mode == "F":
        return None
    rgb = im.convert("RGBA" if mode in ("P", "PA") else "RGB")
    return _divide(_luma(np.asarray(rgb)), 255.0)


def _divide(arr: np.ndarray, top: float) -> np.ndarray:
    """`arr / top` in place (float32 division by the bit depth's maximum is exact to the float64 result)."""
    arr /= np.float32(top)
    return arr


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Luminance of the first three channels, accumulated channel by channel in float32 (no N x 3 float copy)."""
    out = rgb[..., 0].astype(np.float32)
    out *= np.float32(_LUMA[0])
    for c in (1, 2):
        out += rgb[..., c].astype(np.float32) * np.float32(_LUMA[c])
    return out


def _png_bit_depth(head: bytes) -> int:
    """Bit depth from the PNG IHDR chunk (byte 24); palette images are reported as 8-bit samples."""
    if len(head) < 26 or head[12:16] != b"IHDR":
        return 8
    bit_depth, color_type = head[24], head[25]
    return 8 if color_type == 3 else int(bit_depth)


def _read_tiff(path: str | os.PathLike[str]) -> tuple[np.ndarray, int, str]:
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ImageReadError(path, "TIFF contains no image")
            series = tif.series[0]
            page = series.keyframe
            check_pixels(path, page.imagewidth, page.imagelength, _tiff_frames(series.shape, page.samplesperpixel))
            arr = series.asarray()
            photometric = page.photometric.name
            bits = int(page.bitspersample)
            colormap = page.colormap
    except (ImageReadError, MemoryError):
        raise
    except Exception as exc:
        raise ImageReadError(path, f"corrupt or unreadable TIFF ({one_line(exc)})") from None
    if photometric == "PALETTE" and colormap is not None and arr.ndim == 2:
        arr = np.moveaxis(np.asarray(colormap)[:, arr], 0, -1)
        bits = 16
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _luma(arr)
    elif arr.ndim == 3 and arr.shape[-1] == 2:  # grey + alpha
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ImageReadError(path, f"TIFF image has shape {arr.shape}, expected a 2-D grey or RGB image")
    image = _scale_array(arr, bits)
    if photometric == "MINISWHITE":
        np.subtract(1.0, image, out=image)
    return image, bits, photometric


def _tiff_frames(shape: tuple[int, ...], samples: int) -> int:
    """Pages in a TIFF series of `shape` (samples per pixel as the last axis not counted)."""
    dims = list(shape)
    if samples > 1 and dims and dims[-1] == samples:
        dims = dims[:-1]
    return int(np.prod(dims[:-2])) if len(dims) > 2 else 1


def _scale_array(arr: np.ndarray, bits: int) -> np.ndarray:
    """Scale by the bit depth's maximum (integers), keep [0, 1] floats, min-max other floats (float32 out)."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        top = float(2 ** min(max(bits, 1), 32) - 1)
        if arr.dtype.itemsize <= 2:
            return _divide(arr.astype(np.float32), top)
        return (arr / top).astype(np.float32)
    if np.issubdtype(arr.dtype, np.signedinteger):
        info = np.iinfo(arr.dtype)
        return ((arr.astype(np.float64) - info.min) / (float(info.max) - info.min)).astype(np.float32)
    arr = arr.astype(np.float32, copy=False)
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if lo >= 0.0 and hi <= 1.0:
        return arr
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _finish(path: str | os.PathLike[str], image: np.ndarray) -> np.ndarray:
    if image.ndim != 2:
        raise ImageReadError(path, f"image has shape {image.shape} after conversion, expected 2-D")
    if image.size == 0:
        raise ImageReadError(path, "image has no pixels")
    if not np.all(np.isfinite(image)):
        raise ImageReadError(path, "image contains NaN or infinite values")
    image = np.ascontiguousarray(image, dtype=np.float32)
    if not image.flags.writeable:
        image = image.copy()
    return np.clip(image, 0.0, 1.0, out=image)


def _save_png(path: str | os.PathLike[str], arr: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")

