"""DICOM pixel reading: modality LUT, VOI LUT / window, MONOCHROME1 inversion, scaling to [0, 1].

The display pipeline follows DICOM PS3.3 C.11: stored values -> Modality LUT (or rescale slope/intercept)
-> VOI LUT (or window centre/width) -> presentation. The result is bright where the tissue is dense.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

from lungprior.data.limits import check_pixels
from lungprior.errors import ImageReadError, one_line

#: Only where the import name differs from the pip name; the others name their pip package already.
_PIP_HINTS: dict[str, str] = {"gdcm": "python-gdcm"}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class DicomPixels:
    """A decoded DICOM frame, already in [0, 1] with dense = bright."""

    image: np.ndarray
    bit_depth: int
    pixel_spacing_mm: float | None
    photometric: str | None


def read_dicom(path: str | os.PathLike[str], *, force: bool = False) -> DicomPixels:
    """Read a single-frame DICOM image; every failure raises `ImageReadError(path, reason)`.

    `force` reads files that lack the 128-byte preamble and "DICM" marker.
    """
    ds = _dcmread(path, force)
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if force:
            raise ImageReadError(path, "not a DICOM image (no 'DICM' marker and no pixel data)")
        raise ImageReadError(path, "DICOM file has no pixel data")
    _check_decoder(path, ds)
    _check_size(path, ds)
    try:
        raw = ds.pixel_array
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(path, _decode_failure(ds, exc)) from None
    photometric = str(ds.get("PhotometricInterpretation", "") or "") or None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(path, f"multi-frame DICOM ({frames} frames) is not a 2-D image")
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 0) or raw.dtype.itemsize * 8)
    if samples == 3 and raw.ndim == 3 and raw.shape[-1] == 3:
        image = _scale_color(raw, bits)
    elif raw.ndim == 2:
        image = _grayscale(raw, ds)
    else:
        raise ImageReadError(path, f"DICOM pixel array has shape {raw.shape}, expected a 2-D image")
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    if not np.all(np.isfinite(image)):
        raise ImageReadError(path, "DICOM pixel data contains NaN or infinite values")
    return DicomPixels(
        image=np.ascontiguousarray(image, dtype=np.float32),
        bit_depth=bits,
        pixel_spacing_mm=pixel_spacing(ds),
        photometric=photometric,
    )


def _check_size(path: str | os.PathLike[str], ds: pydicom.Dataset) -> None:
    """Rows x Columns (x frames) from the header against the pixel limit, before the pixel data is decoded."""
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return  # malformed header values: decoding reports them
    check_pixels(path, cols, rows, frames)


def pixel_spacing(ds: pydicom.Dataset) -> float | None:
    """Isotropic spacing in mm: mean of row/column PixelSpacing, else ImagerPixelSpacing; None if unusable.

    Values that are missing, non-numeric, zero or negative (some files store "0.000") mean "unknown".
    """
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = _spacing_value(ds.get(keyword))
        if value is not None:
            return value
    return None


def _spacing_value(value: Any) -> float | None:
    if value is None or value == "":
        return None
    items = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        numbers = [float(v) for v in items[:2]]
    except (TypeError, ValueError):
        return None
    if not numbers or not all(math.isfinite(v) and v > 0 for v in numbers):
        return None
    return float(np.mean(numbers))


def _dcmread(path: str | os.PathLike[str], force: bool) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, force=force)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a DICOM file ({one_line(exc)})") from None
    except Exception as exc:
        raise ImageReadError(path, f"cannot parse DICOM file ({one_line(exc)})") from None


def _check_decoder(path: str | os.PathLike[str], ds: pydicom.Dataset) -> None:
    """Fail early, naming the transfer syntax and the packages that would decode it."""
    uid = _transfer_syntax(ds)
    if uid is None or not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise ImageReadError(path, f"DICOM transfer syntax {uid.name} ({uid}) is not supported") from None
    if not decoder.is_available:
        raise ImageReadError(
            path, f"no installed decoder for DICOM transfer syntax {uid.name} ({uid}); install one of: "
            + "; ".join(_decoder_hints(uid)),
        )


def _decode_failure(ds: pydicom.Dataset, exc: BaseException) -> str:
    """Reason for a failed decode; for compressed data, name the syntax and the decoders not installed."""
    uid = _transfer_syntax(ds)
    if uid is None or not uid.is_compressed:
        return f"cannot decode DICOM pixel data ({one_line(exc)})"
    hints = _decoder_hints(uid)
    others = f"; other decoders: {'; '.join(hints)}" if hints else ""
    return f"cannot decode DICOM transfer syntax {uid.name} ({uid}) ({one_line(exc)}){others}"


def _transfer_syntax(ds: pydicom.Dataset) -> pydicom.uid.UID | None:
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _decoder_hints(uid: pydicom.uid.UID) -> list[str]:
    """The packages pydicom says its missing plugins need, e.g. "gdcm>=3.0.10 (pip: python-gdcm)"."""
    try:
        lines = get_decoder(uid).missing_dependencies
    except NotImplementedError:
        return []
    hints = []
    for line in lines:
        plugin, _, needs = line.partition(" - requires ")
        pip_name = _PIP_HINTS.get(plugin.strip())
        needs = needs.strip() or plugin.strip()
        hints.append(f"{needs} (pip: {pip_name})" if pip_name else needs)
    return hints


def _grayscale(raw: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, then scale to [0, 1] over the VOI output range."""
    arr = apply_modality_lut(raw, ds)
    voi = _apply_voi(arr, ds)
    if voi is not None:
        out, lo, hi = voi
    else:
        out = np.asarray(arr, dtype=np.float64)
        lo, hi = float(out.min()), float(out.max())
    out = np.asarray(out, dtype=np.float64)
    if not out.flags.writeable:
        out = out.copy()
    if hi <= lo:
        return np.zeros(out.shape, dtype=np.float32)
    out -= lo
    out /= hi - lo
    return np.clip(out, 0.0, 1.0, out=out)


def _apply_voi(arr: np.ndarray, ds: pydicom.Dataset) -> tuple[np.ndarray, float, float] | None:
    """Apply the first VOI LUT (preferred) or window; return the output and its nominal range.

    A malformed VOI (e.g. width 0) is ignored and the caller falls back to the data's min-max.
    """
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        try:
            descriptor = list(seq[0].LUTDescriptor)
            entries = int(descriptor[0]) or 2**16
            first = int(descriptor[1])
            domain = np.arange(first, first + entries, dtype=np.int64)
            lut_out = np.asarray(apply_voi(domain, ds), dtype=np.float64)
            out = np.asarray(apply_voi(_as_integers(arr), ds), dtype=np.float64)
            return out, float(lut_out.min()), float(lut_out.max())
        except Exception:
            pass
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        try:
            with np.errstate(over="ignore"):
                ends = apply_windowing(np.array([-1e300, 1e300]), ds)
            return apply_windowing(np.asarray(arr, dtype=np.float64), ds), float(ends[0]), float(ends[1])
        except Exception:
            pass
    return None


def _as_integers(arr: np.ndarray) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    return np.rint(arr).astype(np.int64)


def _scale_color(raw: np.ndarray, bits: int) -> np.ndarray:
    """RGB DICOM (pydicom converts YBR to RGB) -> luminance scaled by the stored bit depth's maximum."""
    return np.clip((raw.astype(np.float64) @ _LUMA) / float(2**bits - 1), 0.0, 1.0)

