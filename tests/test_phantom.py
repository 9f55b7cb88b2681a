"""The synthetic benchmark: determinism, format, anatomy, findings and shortcuts."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation, label
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.manifest import read_manifest
from lungprior.data.phantom import PhantomConfig, generate_benchmark, parse_prevalence
from lungprior.data.phantom.plan import plan_benchmark
from lungprior.data.phantom.render import render_film
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS

SMALL = PhantomConfig(n=24, size=96, seed=3, bias=0.5)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    generate_benchmark(SMALL, out, workers=2, progress=False)
    return out


def test_same_config_gives_byte_identical_files(small_bench: Path, tmp_path: Path) -> None:
    generate_benchmark(SMALL, tmp_path / "again", workers=1, progress=False)
    first, second = _digest(small_bench), _digest(tmp_path / "again")
    assert len(first) == 3 * SMALL.n + 4  # films, masks, lesions + manifest, markers, summary, config
    assert first == second


def test_other_seed_gives_other_films(small_bench: Path, tmp_path: Path) -> None:
    generate_benchmark(dataclasses.replace(SMALL, seed=4), tmp_path / "s4", progress=False)
    a = np.asarray(Image.open(small_bench / "images" / "phantom_00000.png"))
    b = np.asarray(Image.open(tmp_path / "s4" / "images" / "phantom_00000.png"))
    assert not np.array_equal(a, b)


def test_manifest_is_nih_format_and_patient_disjoint(small_bench: Path) -> None:
    m = read_manifest(small_bench / "manifest.csv")
    assert len(m) == SMALL.n
    assert (m["No Finding"] == (m[list(FINDINGS)].sum(axis=1) == 0)).all()
    assert m.groupby("patient_id")["split"].nunique().max() == 1
    assert m["patient_id"].value_counts().max() > 1  # several films per patient
    assert np.allclose(m["pixel_spacing_mm"], 350.0 / SMALL.size)
    for p in m["path"]:
        assert (small_bench / p).is_file()


def test_resume_restores_deleted_films_and_refuses_other_settings(small_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    generate_benchmark(SMALL, out, progress=False)
    before = _digest(out)
    for sub in ("images", "lesions"):
        (out / sub / "phantom_00005.png").unlink()
    generate_benchmark(SMALL, out, progress=False)
    assert _digest(out) == before
    with pytest.raises(LungpriorError, match="other settings"):
        generate_benchmark(dataclasses.replace(SMALL, bias=0.1), out, progress=False)


def test_two_lungs_right_on_image_left() -> None:
    for plan in plan_benchmark(PhantomConfig(n=12, size=128, seed=1))[:12]:
        _, mask, _ = render_film(plan, 128)
        right, left = mask == 255, mask == 128
        assert label(right)[1] == 1 and label(left)[1] == 1
        cols = np.arange(128)
        assert (right.sum(0) * cols).sum() / right.sum() < 64 < (left.sum(0) * cols).sum() / left.sum()
        frac = (mask > 0).mean()
        assert 0.15 < frac < 0.5


def _plan_with(kind: str, size: int = 128):
    for plan in plan_benchmark(PhantomConfig(n=400, size=size, seed=7)):
        if plan.labels[kind] and sum(plan.labels.values()) == 1:
            return plan
    raise AssertionError(f"no film with only {kind}")


@pytest.mark.parametrize("kind", FINDINGS)
def test_finding_is_an_opacity_where_it_belongs(kind: str) -> None:
    plan = _plan_with(kind)
    image, mask, lesions = render_film(plan, 128)
    bare, _, _ = render_film(dataclasses.replace(plan, lesions=()), 128)
    extent = ((lesions >> FINDINGS.index(kind)) & 1).astype(bool)
    assert extent.sum() > 3
    # Opacity: brighter where the lesion is than the same film without it.
    assert image[extent].astype(float).mean() > bare[extent].astype(float).mean() + 2
    inside = (extent & (mask > 0)).sum() / extent.sum()
    if kind == "Edema":
        assert 0.05 < 1 - inside < 0.6  # perihilar haze spills over the medial lung borders
    elif kind != "Mass":
        assert inside > 0.9


def test_markers_lie_outside_the_lungs() -> None:
    for plan in plan_benchmark(PhantomConfig(n=4, size=256, seed=2))[:4]:
        on = dataclasses.replace(plan, markers={k: 1 for k in FINDINGS})
        off = dataclasses.replace(plan, markers={k: 0 for k in FINDINGS})
        img_on, mask, _ = render_film(on, 256)
        img_off, _, _ = render_film(off, 256)
        changed = img_on != img_off  # markers draw from their own random stream: nothing else moves
        assert changed.sum() > 50
        # At least 2 px (2.7 mm) from the lungs; docs/phantom.md lists the measured distances.
        assert not (changed & binary_dilation(mask > 0, iterations=2)).any()


def test_bias_ties_markers_to_labels_in_train_only() -> None:
    plans = plan_benchmark(PhantomConfig(n=3000, size=64, seed=0, bias=1.0, test_bias=0.0))
    for split, expect_tied in (("train", True), ("test", False)):
        sub = [p for p in plans if p.split == split]
        y = np.array([[p.labels[k] for k in FINDINGS] for p in sub])
        m = np.array([[p.markers[k] for k in FINDINGS] for p in sub])
        if expect_tied:
            assert (y == m).all()
        else:
            corr = [np.corrcoef(y[:, j], m[:, j])[0, 1] for j in range(len(FINDINGS))]
            assert max(abs(c) for c in corr) < 0.15
            assert 0.12 < m.mean() < 0.28  # markers still appear at the base rate


def test_val_bias_sets_the_validation_split_only() -> None:
    base = PhantomConfig(n=3000, size=64, seed=0, bias=1.0, test_bias=0.0)
    plans = plan_benchmark(base)
    plans_val = plan_benchmark(dataclasses.replace(base, val_bias=0.0))
    for p, q in zip(plans, plans_val, strict=True):
        assert p.labels == q.labels and p.split == q.split
        if p.split != "val":  # train and test films are the same films, markers included
            assert p.markers == q.markers and p.noise_seed == q.noise_seed
    val = [q for q in plans_val if q.split == "val"]
    y = np.array([[q.labels[k] for k in FINDINGS] for q in val])
    m = np.array([[q.markers[k] for k in FINDINGS] for q in val])
    assert (np.array([[p.markers[k] for k in FINDINGS] for p in plans if p.split == "val"]) == y).all()
    assert max(abs(np.corrcoef(y[:, j], m[:, j])[0, 1]) for j in range(len(FINDINGS))) < 0.2
    assert "val_bias" not in base.to_dict()  # unset: recorded settings as before
    assert dataclasses.replace(base, val_bias=0.0).to_dict()["val_bias"] == 0.0


def test_prevalence_controls_label_rates() -> None:
    cfg = PhantomConfig(n=3000, size=64, prevalence=parse_prevalence("Mass=0.4,edema=0.05"))
    plans = plan_benchmark(cfg)
    rate = {k: np.mean([p.labels[k] for p in plans]) for k in FINDINGS}
    assert abs(rate["Mass"] - 0.4) < 0.05
    assert abs(rate["Edema"] - 0.05) < 0.03
    assert abs(rate["Nodule"] - 0.15) < 0.04


@pytest.mark.parametrize(
    ("text", "match"), [("Mass=abc", "not a number"), ("Effusion=0.1", "NAME=VALUE"), ("Mass", "NAME=VALUE")]
)
def test_bad_prevalence(text: str, match: str) -> None:
    with pytest.raises(LungpriorError, match=match):
        parse_prevalence(text)


def test_cli_bad_value_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "x"), "--bias", "1.5"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --bias must be in [0, 1], got 1.5"
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "y"), "--val-bias", "-0.1"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --val-bias must be in [0, 1], got -0.1"


def test_cli_writes_benchmark_and_gallery(tmp_path: Path) -> None:
    out, gallery = tmp_path / "b", tmp_path / "g.png"
    result = CliRunner().invoke(app, ["phantom", "--out", str(out), "--n", "12", "--size", "64", "--gallery",
                                      str(gallery)])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.csv").is_file() and (out / "summary.json").is_file()
    assert Image.open(gallery).size[0] > 500
