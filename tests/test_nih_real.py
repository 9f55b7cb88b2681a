"""NIH curation on the real label table shipped in the torchxrayvision wheel (read once per module)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from lungprior.data.manifest import SPLITS
from lungprior.data.nih import NihCuration, curate_nih, read_nih_table
from lungprior.data.splits import check_patient_disjoint
from lungprior.labels import FINDINGS

EXPECTED = {"Mass": 5782, "Nodule": 6331, "Pneumonia": 1431, "Edema": 2303, "Fibrosis": 1686, "No Finding": 60361}


def _table_path() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchxrayvision is not installed: the real NIH table is not available")
    path = Path(spec.submodule_search_locations[0]) / "data" / "Data_Entry_2017_v2020.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not in this torchxrayvision install")
    return path


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_nih_table(_table_path())


@pytest.fixture(scope="module")
def full(table: pd.DataFrame) -> NihCuration:
    return curate_nih(table)


@pytest.fixture(scope="module")
def subsampled(table: pd.DataFrame) -> NihCuration:
    return curate_nih(table, no_finding_ratio=1.0, seed=0)


def test_table_shape(table: pd.DataFrame) -> None:
    assert len(table) == 112120
    assert table["Patient ID"].nunique() == 30805


def test_label_counts_match_the_reference(full: NihCuration) -> None:
    m = full.manifest
    assert {label: int(m[label].sum()) for label in EXPECTED} == EXPECTED
    assert int((m[list(FINDINGS)].sum(axis=1) > 0).sum()) == 15674
    assert len(m) == 15674 + 60361
    assert {k: v["total"] for k, v in full.summary["label_counts"].items()} == EXPECTED
    assert full.summary["excluded"]["other_findings_only"] == 112120 - 15674 - 60361
    assert set(m["view"]) == {"PA", "AP"}
    # spacing of the 1024-px PNGs: original spacing (~0.14 mm) x original size (~1.3-3k px) / 1024
    assert m["pixel_spacing_mm"].between(0.15, 0.55).all()
    assert m["pixel_spacing_mm"].median() == pytest.approx(0.38, abs=0.02)


def test_no_patient_in_two_splits(full: NihCuration) -> None:
    m = full.manifest
    check_patient_disjoint(m)
    assert (m.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(m["split"]) == set(SPLITS)
    test_share = full.summary["patients"]["test"] / full.summary["patients"]["total"]
    assert 0.18 < test_share < 0.22


def test_view_filter_keeps_exactly_the_pa_rows(table: pd.DataFrame, full: NihCuration) -> None:
    pa = curate_nih(table, views="PA").manifest
    expected = full.manifest[full.manifest["view"] == "PA"].reset_index(drop=True)
    pd.testing.assert_frame_equal(pa, expected)


def test_subsampled_no_finding_matches_positives_per_split(full: NihCuration, subsampled: NihCuration) -> None:
    counts = subsampled.summary
    assert counts["label_counts"]["No Finding"]["total"] == 15674
    for name in SPLITS:
        assert counts["label_counts"]["No Finding"][name] == counts["images_with_any_finding"][name]
    assert counts["excluded"]["no_finding_subsampled"] == 60361 - 15674
    check_patient_disjoint(subsampled.manifest)
    # whole patients: a kept patient keeps all of its No Finding images
    nf_all = full.manifest.loc[full.manifest["No Finding"] == 1, "patient_id"].value_counts()
    nf_kept = subsampled.manifest.loc[subsampled.manifest["No Finding"] == 1, "patient_id"].value_counts()
    assert (nf_kept == nf_all[nf_kept.index]).all()
    # positives are untouched, and a patient's split does not change with subsampling
    merged = subsampled.manifest.merge(full.manifest[["image_id", "split"]], on="image_id", suffixes=("", "_full"))
    assert len(merged) == len(subsampled.manifest)
    assert (merged["split"] == merged["split_full"]).all()


def test_subsampling_is_seeded(table: pd.DataFrame, subsampled: NihCuration) -> None:
    ids = set(subsampled.manifest["image_id"])
    assert set(curate_nih(table, no_finding_ratio=1.0, seed=0).manifest["image_id"]) == ids
    assert set(curate_nih(table, no_finding_ratio=1.0, seed=1).manifest["image_id"]) != ids
