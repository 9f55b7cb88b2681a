"""Tests for DICOM reading in lungprior.data.io / lungprior.data.dicom, and image file listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomfiles import make_dicom
from pydicom.uid import RLELossless

from lungprior.data.io import IMAGE_SUFFIXES, is_image_file, list_image_files, read_image
from lungprior.errors import ImageReadError


def ramp16() -> np.ndarray:
    return (np.arange(48, dtype=np.uint32).reshape(6, 8) * 1365).astype(np.uint16)


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    raw = np.array([[0, 1000], [3000, 4095]], np.uint16)
    mono1, m1 = read_image(make_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1"))
    mono2, _ = read_image(make_dicom(tmp_path / "m2.dcm", raw, photometric="MONOCHROME2"))
    assert m1.photometric == "MONOCHROME1" and m1.bit_depth == 12 and m1.format == "dicom"
    np.testing.assert_allclose(mono2, raw / 4095.0, atol=1e-6)  # no VOI: min-max over the data
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
    assert mono1[0, 0] == pytest.approx(1.0) and mono1[1, 1] == pytest.approx(0.0)


def test_dicom_rescale_and_window(tmp_path: Path) -> None:
    # stored s -> modality 2*s - 1000; window centre 0, width 1000 (LINEAR): [-500, 500] -> [0, 1]
    raw = np.array([[0, 250, 500], [600, 750, 1000]], np.uint16)
    path = make_dicom(
        tmp_path / "w.dcm", raw, RescaleSlope="2", RescaleIntercept="-1000", WindowCenter="0",
        WindowWidth="1000",
    )
    img, _ = read_image(path)
    modality = 2.0 * raw - 1000.0
    centre, width = 0.0 - 0.5, 1000.0 - 1.0  # DICOM LINEAR window definition (PS3.3 C.11.2.1.2.1)
    expected = np.clip((modality - centre) / width + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(img, expected, atol=1e-5)
    assert img[0, 0] == 0.0 and img[1, 2] == 1.0 and 0.0 < img[1, 0] < 1.0


def test_dicom_spacing_pixel_then_imager(tmp_path: Path) -> None:
    raw = np.zeros((4, 4), np.uint16)
    _, meta = read_image(make_dicom(tmp_path / "a.dcm", raw, PixelSpacing=["0.14", "0.16"]))
    assert meta.pixel_spacing_mm == pytest.approx(0.15)
    _, meta = read_image(make_dicom(tmp_path / "b.dcm", raw, ImagerPixelSpacing=["0.2", "0.2"]))
    assert meta.pixel_spacing_mm == pytest.approx(0.2)
    _, meta = read_image(make_dicom(tmp_path / "c.dcm", raw, PixelSpacing=["0", "0"]))
    assert meta.pixel_spacing_mm is None


def test_dicom_without_extension_is_recognised(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "IM0001", np.array([[0, 10], [20, 30]], np.uint16))
    img, meta = read_image(path)
    assert meta.format == "dicom" and img[1, 1] == pytest.approx(1.0)
    assert is_image_file(path) and "" in IMAGE_SUFFIXES and ".dcm" in IMAGE_SUFFIXES


def test_dicom_rle_compressed_decodes(tmp_path: Path) -> None:
    raw = ramp16() % 4096
    path = make_dicom(tmp_path / "r.dcm", raw)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    img, _ = read_image(tmp_path / "rle.dcm")
    np.testing.assert_allclose(img, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "syntax", "package"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless", "pyjpegls"),  # no plugin installed at all
        ("JPEG-lossy.dcm", "JPEG Extended", "pylibjpeg-libjpeg"),  # 12-bit: the installed plugin fails
    ],
)
def test_dicom_undecodable_transfer_syntax_names_syntax_and_package(name: str, syntax: str, package: str) -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    try:
        pydicom.dcmread(path).pixel_array  # noqa: B018
    except Exception:
        pass
    else:
        pytest.skip(f"a decoder for {syntax} is installed, so {name} decodes")
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    msg = str(err.value)
    assert syntax in msg and package in msg and "\n" not in msg


def test_dicom_preamble_that_looks_like_tiff() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")  # its 128-byte preamble starts with a TIFF header
    assert Path(path).read_bytes()[:4] == b"II*\x00"
    img, meta = read_image(path)
    assert meta.format == "dicom" and meta.shape == (128, 128) and img.std() > 0.05
    assert meta.pixel_spacing_mm == pytest.approx(0.661468)


def test_dicom_without_pixel_data(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "n.dcm", np.zeros((2, 2), np.uint16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_image(path)


def test_real_chest_dicom_lungs_darker_than_mediastinum() -> None:
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCI.dcm")
    if path is None:
        pytest.skip("RG1_UNCI.dcm not available from pydicom-data")
    img, meta = read_image(path)
    assert meta.shape == (1955, 1841) and meta.photometric == "MONOCHROME1" and meta.bit_depth == 15
    # Boxes picked on a rendering of this file: upper-mid right and left lung fields, and the
    # mediastinum/spine column between them (rows, cols in pixels).
    right_lung = img[400:800, 300:600].mean()
    left_lung = img[400:800, 1100:1400].mean()
    mediastinum = img[600:1400, 820:1000].mean()
    assert right_lung < mediastinum - 0.15 and left_lung < mediastinum - 0.15
    # The stored values run the other way (MONOCHROME1), so the inversion is what makes lungs dark.
    raw = pydicom.dcmread(path).pixel_array
    assert raw[400:800, 300:600].mean() > raw[600:1400, 820:1000].mean()
    # The file stores PixelSpacing "0.000\0.000": it is read, and a zero spacing means "unknown".
    tag = pydicom.dcmread(path, stop_before_pixels=True).PixelSpacing
    assert [float(v) for v in tag] == [0.0, 0.0]
    assert meta.pixel_spacing_mm is None


def test_list_image_files_skips_hidden_and_other_files(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt", "c.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "readme").write_bytes(b"not dicom")
    make_dicom(tmp_path / "1.2.840.99", np.zeros((2, 2), np.uint16))
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_image_files(tmp_path)] == ["1.2.840.99", "a.JPG", "b.png", "c.tiff"]
