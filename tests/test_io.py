"""Tests for lungprior.data.io: formats, scaling, failures, mask round-trips and writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from lungprior.data.io import mask_values, read_image, read_mask, write_mask, write_png
from lungprior.errors import ImageReadError, LungpriorError


def ramp16() -> np.ndarray:
    return (np.arange(48, dtype=np.uint32).reshape(6, 8) * 1365).astype(np.uint16)


# --- PNG / JPEG / TIFF -------------------------------------------------------------------------------------


def test_png_16bit_values_preserved_and_scaled_by_65535(tmp_path: Path) -> None:
    raw = ramp16()
    Image.fromarray(raw).save(tmp_path / "a.png")
    img, meta = read_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (6, 8)
    np.testing.assert_allclose(img, raw / 65535.0, atol=1e-7)
    assert meta.format == "png" and meta.bit_depth == 16 and meta.shape == (6, 8)
    assert meta.pixel_spacing_mm is None
    assert img.max() < 1.0  # not min-max scaled: the ramp's top value is 64155


def test_png_8bit_scaled_by_255_not_min_max(tmp_path: Path) -> None:
    raw = np.full((4, 5), 100, np.uint8)
    raw[0, 0] = 50
    Image.fromarray(raw).save(tmp_path / "g.png")
    img, meta = read_image(tmp_path / "g.png")
    assert meta.bit_depth == 8 and meta.photometric == "L"
    np.testing.assert_allclose(img, raw / 255.0, atol=1e-7)


def test_png_rgba_uses_luminance_and_ignores_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 200, 100, 50
    rgba[..., 3] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16  # varying alpha must not matter
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    img, meta = read_image(tmp_path / "c.png")
    expected = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0
    np.testing.assert_allclose(img, expected, atol=1e-6)
    assert meta.photometric == "RGBA"


def test_png_la_takes_grey_channel(tmp_path: Path) -> None:
    la = np.zeros((3, 3, 2), np.uint8)
    la[..., 0] = [[0, 10, 20], [30, 40, 50], [60, 70, 255]]
    la[..., 1] = 7
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img, _ = read_image(tmp_path / "la.png")
    np.testing.assert_allclose(img, la[..., 0] / 255.0, atol=1e-7)


def test_png_palette_maps_through_palette(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([0, 0, 0, 255, 255, 255, 128, 128, 128] + [0] * (253 * 3))
    im.save(tmp_path / "p.png")
    img, meta = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(img, [[0.0, 1.0], [128 / 255, 1.0]], atol=1e-6)
    assert meta.photometric == "P" and meta.bit_depth == 8


def test_jpeg_reads_grey(tmp_path: Path) -> None:
    raw = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    Image.fromarray(raw).save(tmp_path / "j.jpg", quality=95)
    img, meta = read_image(tmp_path / "j.jpg")
    assert meta.format == "jpeg" and img.shape == (32, 32)
    assert np.abs(img - raw / 255.0).max() < 0.05


def test_tiff_uint16_and_miniswhite(tmp_path: Path) -> None:
    raw = ramp16()
    tifffile.imwrite(tmp_path / "t.tif", raw)
    img, meta = read_image(tmp_path / "t.tif")
    assert meta.format == "tiff" and meta.bit_depth == 16
    np.testing.assert_allclose(img, raw / 65535.0, atol=1e-7)
    tifffile.imwrite(tmp_path / "w.tiff", raw, photometric="miniswhite")
    inverted, _ = read_image(tmp_path / "w.tiff")
    np.testing.assert_allclose(inverted, 1.0 - raw / 65535.0, atol=1e-6)


def test_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 3), 51, np.uint8)).save(tmp_path / "x.jpg", format="PNG")
    img, meta = read_image(tmp_path / "x.jpg")
    assert meta.format == "png"
    np.testing.assert_allclose(img, 0.2, atol=1e-6)


# --- failures ----------------------------------------------------------------------------------------------


def test_truncated_png_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    for cut, name in ((len(data) // 2, "half.png"), (len(data) - 12, "no_iend.png")):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(ImageReadError, match="corrupt or truncated PNG") as err:
            read_image(tmp_path / name)
        assert err.value.path == str(tmp_path / name)


def test_truncated_jpeg_fails(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "f.jpg")
    data = (tmp_path / "f.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="JPEG"):
        read_image(tmp_path / "t.jpg")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.png", b"", "empty file"),
        ("noise.png", bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8)), "not PNG, JPEG"),
        ("noise.dcm", b"\x01\x02garbage" * 40, "DICOM"),
        ("notes", b"just some text, not an image" * 10, "not a DICOM image"),
    ],
)
def test_bad_files_raise_one_line_error(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as err:
        read_image(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_mask(tmp_path)


def test_multiframe_tiff_is_not_2d(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 5, 6), np.uint8), photometric="minisblack")
    with pytest.raises(ImageReadError, match="2-D"):
        read_image(tmp_path / "stack.tif")


# --- masks and writers -------------------------------------------------------------------------------------


def test_mask_round_trip_is_0_255_and_atomic(tmp_path: Path) -> None:
    mask = np.zeros((5, 7), bool)
    mask[1:4, 2:6] = True
    out = tmp_path / "sub" / "m.png"
    write_mask(out, mask)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.png"]  # no temp files left
    with Image.open(out) as im:
        assert im.mode == "L"
    assert mask_values(out).tolist() == [0, 255]
    np.testing.assert_array_equal(read_mask(out), mask)
    np.testing.assert_array_equal(read_mask(out, shape=(5, 7)), mask)


def test_read_mask_thresholds_at_128_and_reports_values(tmp_path: Path) -> None:
    raw = np.array([[0, 127, 128], [200, 255, 3]], np.uint8)
    Image.fromarray(raw).save(tmp_path / "soft.png")
    assert mask_values(tmp_path / "soft.png").tolist() == [0, 3, 127, 128, 200, 255]
    np.testing.assert_array_equal(read_mask(tmp_path / "soft.png"), raw >= 128)


def test_read_mask_size_mismatch(tmp_path: Path) -> None:
    write_mask(tmp_path / "m.png", np.ones((4, 6), bool))
    with pytest.raises(ImageReadError, match=r"mask size 4x6 \(HxW\) differs from image size 6x4"):
        read_mask(tmp_path / "m.png", shape=(6, 4))


def test_write_png_float_uint8_uint16(tmp_path: Path) -> None:
    write_png(tmp_path / "f.png", np.array([[0.0, 0.5], [1.0, 1.2]], np.float32))
    assert np.asarray(Image.open(tmp_path / "f.png")).tolist() == [[0, 128], [255, 255]]
    raw = ramp16()
    write_png(tmp_path / "u16.png", raw)
    img, meta = read_image(tmp_path / "u16.png")
    assert meta.bit_depth == 16
    np.testing.assert_array_equal(np.rint(img.astype(np.float64) * 65535).astype(np.uint16), raw)
    u8 = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_png(tmp_path / "u8.png", u8)
    assert np.asarray(Image.open(tmp_path / "u8.png")).tolist() == u8.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "u16.png", "u8.png"]


def test_write_png_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(LungpriorError, match="NaN"):
        write_png(tmp_path / "n.png", np.array([[np.nan, 0.0]]))
    with pytest.raises(LungpriorError, match="dtype int64"):
        write_png(tmp_path / "i.png", np.zeros((2, 2), np.int64))
    with pytest.raises(LungpriorError, match="2-D"):
        write_mask(tmp_path / "m.png", np.zeros((2, 2, 2), bool))
    assert list(tmp_path.iterdir()) == []
