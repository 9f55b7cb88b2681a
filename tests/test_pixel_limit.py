"""The pixel limit: every reader checks the header's size before decoding; a bomb is one bad item."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from dicomfiles import make_dicom
from PIL import Image

from lungprior.data.io import read_image
from lungprior.data.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels
from lungprior.data.segdata import build_segdata
from lungprior.errors import ImageReadError, LungpriorError

BIG = 30000  # 900 MP: 7.2 GB as float64 if it were decoded


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = BIG) -> Path:
    """A PNG whose header says side x side grey, with a few bytes of (zero) data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, side: int = 20000) -> Path:
    """A small real JPEG whose SOF0 header is patched to say side x side."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def tiff_bomb(path: Path, side: int = BIG) -> Path:
    """A zlib TIFF whose one strip claims side x side 8-bit pixels (the data is a few zeros)."""
    strip = zlib.compress(b"\x00" * side * 4)
    entries = [
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, side), (279, 4, 1, len(strip)),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, typ, count) + packed
    path.write_bytes(out + struct.pack("<I", 0) + strip)
    return path


def dicom_bomb(path: Path, side: int = BIG) -> Path:
    """A DICOM whose Rows/Columns say side x side (the pixel data is short)."""
    return make_dicom(path, np.zeros((8, 8), np.uint16), Rows=side, Columns=side)


BOMBS = {"png": png_bomb, "jpg": jpeg_bomb, "tif": tiff_bomb, "dcm": dicom_bomb}


@pytest.mark.parametrize("suffix", sorted(BOMBS))
def test_bomb_is_refused_from_the_header(tmp_path: Path, suffix: str) -> None:
    path = BOMBS[suffix](tmp_path / f"bomb.{suffix}")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert "MP limit" in err.value.reason and MAX_PIXELS_ENV in err.value.reason
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("suffix", ["png", "jpg", "tif", "dcm"])
def test_limit_is_configurable(tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"film.{suffix}"
    if suffix == "dcm":
        dicom_bomb(path, side=64)  # short pixel data: only the limit check is of interest here
    else:
        Image.fromarray(np.full((64, 64), 90, np.uint8)).save(path)
        assert read_image(path)[0].shape == (64, 64)
    monkeypatch.setenv(MAX_PIXELS_ENV, "4000")
    with pytest.raises(ImageReadError, match=r"over the 0\.004 MP limit"):
        read_image(path)


def test_limit_default_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_pixels() == DEFAULT_MAX_PIXELS == 50_000_000
    monkeypatch.setenv(MAX_PIXELS_ENV, "8e7")
    assert max_pixels() == 80_000_000
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(LungpriorError, match=MAX_PIXELS_ENV):
        max_pixels()


def test_reader_returns_float32_without_float64_copies(tmp_path: Path) -> None:
    path = tmp_path / "film16.png"
    raw = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 15).astype(np.uint16)
    Image.fromarray(raw).save(path)
    image, _ = read_image(path)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, (raw / 65535.0).astype(np.float32))  # same values as a float64 division


def test_segdata_batch_goes_on_past_bombs(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 10), 100 + i, np.uint8)).save(images / f"ok{i}.png")
        mask = np.zeros((12, 10), np.uint8)
        mask[2:10, 2:6] = 255
        Image.fromarray(mask).save(masks / f"ok{i}_mask.png")
    tiff_bomb(images / "bomb.tif")
    png_bomb(images / "bomb2.png", side=12000)
    Image.fromarray(mask).save(masks / "bomb_mask.png")
    Image.fromarray(mask).save(masks / "bomb2_mask.png")
    result = build_segdata(images, masks, out_dir=tmp_path / "out", val_fraction=0.0, test_fraction=0.0)
    assert sorted(result.manifest["image_id"]) == ["ok0", "ok1", "ok2"]
    reasons = {e["item"]: e["reason"] for e in result.summary["excluded"]}
    assert set(reasons) == {"bomb", "bomb2"} and all("MP limit" in r for r in reasons.values())
