"""The cascade on what real films are: RGBA screenshots, black borders, burned-in letters, 16-bit, 300–3700 px.

One phantom film is turned into such variants (its lung mask transformed alike); every variant must be
segmented (no error) and its mask must either be good (Dice >= 0.8) or carry a QC flag with a reason:
never garbage written silently.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.data.io import read_image, read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.segment.infer import mask_path_for, segment_manifest
from lungprior.segment.infer.borders import film_box, paste_back
from lungprior.segment.overlap import dice as _dice


def _variants(film: np.ndarray, lung: np.ndarray, folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (file, its lung mask)."""
    out: dict[str, tuple[Path, np.ndarray]] = {}
    grey = np.rint(film * 255).astype(np.uint8)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    out["rgba"] = (folder / "rgba.png", lung)
    pad = 40
    bordered = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    cv2.putText(bordered, "L PORTABLE", (pad + 4, pad + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 2)
    cv2.putText(bordered, "R", (bordered.shape[1] - pad - 20, pad + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    Image.fromarray(bordered).save(folder / "border_letters.png")
    out["border_letters"] = (folder / "border_letters.png", np.pad(lung, pad))
    for name, side in (("small", 300), ("large", 3700)):
        h, w = grey.shape
        size = (side, round(h * side / w))
        big = cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC)
        Image.fromarray(big).save(folder / f"{name}.png")
        out[name] = (folder / f"{name}.png", cv2.resize(lung.astype(np.uint8), size, cv2.INTER_NEAREST) > 0)
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "sixteen.png")
    out["sixteen"] = (folder / "sixteen.png", lung)
    return out


@pytest.mark.usefixtures("one_torch_thread")
def test_real_film_variants_are_segmented_well_or_flagged(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    generate_benchmark(PhantomConfig(n=1, size=256, seed=5), bench, workers=1, progress=False)
    df = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})
    film, _ = read_image(bench / df["path"][0])
    lung = read_mask(bench / "masks" / f"{df['image_id'][0]}.png")
    films = tmp_path / "films"
    films.mkdir()
    variants = _variants(film, lung, films)
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image_id": list(variants), "path": [str(p) for p, _ in variants.values()], "patient_id": "P",
                  "view": "PA", "split": "test", "pixel_spacing_mm": ""}).to_csv(manifest, index=False)
    result = segment_manifest(manifest, tmp_path / "seg", engine="torch", batch_size=len(variants), progress=False)
    assert (result.done, result.failed) == (len(variants), 0)
    qc = pd.read_csv(tmp_path / "seg" / "qc.csv", dtype={"image_id": str}).set_index("image_id")
    for name, (path, truth) in variants.items():
        mask = read_mask(mask_path_for(tmp_path / "seg" / "masks", name))
        assert mask.shape == truth.shape == read_image(path)[0].shape, name
        score = _dice(mask, truth)
        flagged = qc.loc[name, "flag"] != "ok" and isinstance(qc.loc[name, "reason"], str)
        assert score >= 0.8 or flagged, f"{name}: Dice {score:.3f} and not flagged"


def test_film_box_skips_black_margins_but_not_letters_in_them() -> None:
    rng = np.random.default_rng(0)
    film = 0.2 + 0.6 * rng.random((200, 160))
    framed = np.zeros((260, 240))
    framed[30:230, 50:210] = film
    framed[5:20, 10:90] = 1.0  # burned-in letters in the black margin
    assert film_box(framed) == (30, 230, 50, 210)
    assert film_box(film) == (0, 200, 0, 160)
    narrow = np.zeros((220, 176))
    narrow[10:210, 8:168] = film  # margins of 9 % per axis (collimation, air): kept
    assert film_box(narrow) == (0, 220, 0, 176)
    dark = np.zeros((100, 100))
    dark[45:55, 45:55] = 1.0  # a mostly black image: not cropped to a sliver
    assert film_box(dark) == (0, 100, 0, 100)
    part = np.ones((2, 3), bool)
    full = paste_back(part, (1, 3, 2, 5), (4, 6))
    assert full.sum() == 6 and full[1:3, 2:5].all()
