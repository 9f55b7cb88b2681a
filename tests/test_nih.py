"""Tests for NIH ChestX-ray14 curation on synthetic tables (the real table: test_nih_real.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.manifest import MANIFEST_COLUMNS, read_manifest
from lungprior.data.nih import curate_nih, index_images, parse_views, read_nih_table, write_curation
from lungprior.data.splits import check_patient_disjoint
from lungprior.errors import LungpriorError, ManifestError

HEADER_2017 = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
# image, labels, patient, view, spacing
ROWS = [
    ("00000001_000.png", "Mass", "1", "PA", "0.143"),
    ("00000001_001.png", "No Finding", "1", "PA", "0.143"),
    ("00000002_000.png", "Effusion", "2", "AP", "0.139"),
    ("00000002_001.png", "Effusion|Infiltration", "2", "AP", "0.139"),
    ("00000003_000.png", "Nodule|Effusion", "3", "AP", "0.168"),
    ("00000004_000.png", "No Finding", "4", "PA", "0.171"),
    ("00000005_000.png", "Pneumonia|Edema|Fibrosis", "5", "AP", "0.139"),
    ("00000006_000.png", "No Finding", "6", "AP", "0.139"),
    ("00000007_000.png", "Mass|Nodule", "7", "PA", "0.143"),
    ("00000008_000.png", "Cardiomegaly", "8", "PA", "0.143"),
]


def write_2017(path: Path, rows: list[tuple[str, ...]], header: str = HEADER_2017) -> Path:
    """A table in the original 2017 format: a trailing comma on every line (an unnamed empty column)."""
    lines = [header] + [f"{i},{lab},0,{p},50,M,{v},2500,2048,{s},{s}," for i, lab, p, v, s in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def many_rows(n_patients: int, per_patient: int = 2) -> list[tuple[str, ...]]:
    labels = ["Mass", "No Finding", "Nodule", "No Finding", "Effusion", "Edema|Atelectasis"]
    rows = []
    for p in range(1, n_patients + 1):
        for k in range(per_patient):
            rows.append((f"{p:08d}_{k:03d}.png", labels[(p + k) % len(labels)], str(p), "PA", "0.143"))
    return rows


def by_id(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest.set_index("image_id")


def test_2017_format_selection_labels_and_exclusions(tmp_path: Path) -> None:
    result = curate_nih(write_2017(tmp_path / "Data_Entry_2017.csv", ROWS))
    m = by_id(result.manifest)
    assert list(result.manifest.columns) == list(MANIFEST_COLUMNS)
    kept = {r[0] for r in ROWS} - {"00000002_000.png", "00000002_001.png", "00000008_000.png"}
    assert set(m.index) == kept
    assert m.loc["00000003_000.png", ["Nodule", "Mass", "No Finding"]].tolist() == [1, 0, 0]
    assert m.loc["00000005_000.png", ["Pneumonia", "Edema", "Fibrosis", "No Finding"]].tolist() == [1, 1, 1, 0]
    assert m.loc["00000004_000.png", ["Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis", "No Finding"]].sum() == 1
    assert m.loc["00000004_000.png", "No Finding"] == 1
    # The PNG's spacing: original spacing x original size (2500 x 2048) / 1024, averaged over x and y.
    assert m.loc["00000007_000.png", "pixel_spacing_mm"] == pytest.approx(0.143 * (2500 + 2048) / 2048)
    assert m.loc["00000005_000.png", "pixel_spacing_mm"] == pytest.approx(0.139 * (2500 + 2048) / 2048)
    assert m.loc["00000005_000.png", "view"] == "AP"
    assert m.loc["00000001_000.png", "path"] == "images/00000001_000.png"
    assert m.loc["00000001_000.png", "patient_id"] == "1"
    assert result.summary["excluded"]["other_findings_only"] == 3
    assert result.summary["excluded"]["total"] == 3
    assert result.summary["label_counts"]["No Finding"]["total"] == 3
    assert result.summary["label_counts"]["Mass"]["total"] == 2
    assert result.summary["images_with_any_finding"]["total"] == 4
    check_patient_disjoint(result.manifest)


def test_gzipped_v2020_table_gives_the_same_manifest(tmp_path: Path) -> None:
    plain = write_2017(tmp_path / "t.csv", ROWS, header=HEADER_2017.rstrip(","))
    text = plain.read_text().replace(",\n", "\n")  # v2020: no trailing column
    (tmp_path / "Data_Entry_2017_v2020.csv.gz").write_bytes(gzip.compress(text.encode()))
    a = curate_nih(tmp_path / "Data_Entry_2017_v2020.csv.gz").manifest
    b = curate_nih(write_2017(tmp_path / "Data_Entry_2017.csv", ROWS)).manifest
    pd.testing.assert_frame_equal(a, b)


def test_trailing_commas_on_rows_only_are_tolerated(tmp_path: Path) -> None:
    a = curate_nih(write_2017(tmp_path / "rows_only.csv", ROWS, header=HEADER_2017.rstrip(","))).manifest
    b = curate_nih(write_2017(tmp_path / "both.csv", ROWS)).manifest
    pd.testing.assert_frame_equal(a, b)


def test_view_filter(tmp_path: Path) -> None:
    result = curate_nih(write_2017(tmp_path / "t.csv", ROWS), views="ap")
    assert set(result.manifest["view"]) == {"AP"}
    assert set(result.manifest["image_id"]) == {"00000003_000.png", "00000005_000.png", "00000006_000.png"}
    assert result.summary["excluded"]["view_not_selected"] == 4  # PA images not already excluded
    assert result.summary["settings"]["views"] == ["AP"]


@pytest.mark.parametrize("views", ["PA,LL", "", "PA,", ["AP", "lateral"]])
def test_bad_views_raise(views: object) -> None:
    with pytest.raises(LungpriorError, match="views: "):
        parse_views(views)  # type: ignore[arg-type]


def test_parse_views_normalises() -> None:
    assert parse_views(" pa , AP,PA") == ("PA", "AP")
    assert parse_views(["AP"]) == ("AP",)


def test_patient_level_split_without_lists(tmp_path: Path) -> None:
    table = write_2017(tmp_path / "t.csv", many_rows(200, per_patient=3))
    result = curate_nih(table, val_fraction=0.1, test_fraction=0.2, seed=1)
    m = result.manifest
    check_patient_disjoint(m)
    assert (m.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(m["split"]) == {"train", "val", "test"}
    patients = result.summary["patients"]
    assert 0.6 < patients["train"] / patients["total"] < 0.8
    again = curate_nih(table, val_fraction=0.1, test_fraction=0.2, seed=1).manifest
    pd.testing.assert_frame_equal(m, again)
    other = curate_nih(table, val_fraction=0.1, test_fraction=0.2, seed=2).manifest
    assert not m["split"].equals(other["split"])


def test_official_lists(tmp_path: Path) -> None:
    rows = many_rows(60, per_patient=2)
    table = write_2017(tmp_path / "t.csv", rows)
    test_names = [r[0] for r in rows if int(r[2]) > 45]
    tv_names = [r[0] for r in rows if int(r[2]) <= 44]  # patient 45 is in neither list
    (tmp_path / "test_list.txt").write_text("\n".join(test_names) + "\n\n")
    (tmp_path / "train_val_list.txt").write_text("\n".join([*tv_names, "99999999_000.png"]))
    result = curate_nih(
        table, train_list=tmp_path / "train_val_list.txt", test_list=tmp_path / "test_list.txt", val_fraction=0.25
    )
    m = result.manifest
    check_patient_disjoint(m)
    assert set(m.loc[m["split"] == "test", "image_id"]) == set(test_names) & set(m["image_id"])
    assert set(m.loc[m["split"] != "test", "image_id"]) == set(tv_names) & set(m["image_id"])
    assert set(m["split"]) == {"train", "val", "test"}
    assert "45" not in set(m["patient_id"])
    assert result.summary["excluded"]["not_in_split_lists"] == 1  # patient 45: one of its two is "other"
    assert result.summary["list_entries_not_in_table"] == 1
    assert result.summary["settings"]["split_method"] == "official lists"
    tv_patients = {r[2] for r in rows if int(r[2]) <= 44}
    val_patients = set(m.loc[m["split"] == "val", "patient_id"])
    assert len(val_patients) == 11  # 25 % of the 44 train_val patients (all have a kept image)
    assert val_patients < tv_patients


def test_official_lists_sharing_a_patient_raise_naming_it(tmp_path: Path) -> None:
    rows = many_rows(10, per_patient=2)
    table = write_2017(tmp_path / "t.csv", rows)
    (tmp_path / "test.txt").write_text("00000007_001.png\n00000009_000.png\n")
    (tmp_path / "tv.txt").write_text("00000007_000.png\n00000001_000.png\n")
    with pytest.raises(ManifestError, match=r"disagree: patient 7 is in more than one split \(test, train_val\)"):
        curate_nih(table, train_list=tmp_path / "tv.txt", test_list=tmp_path / "test.txt")


def test_official_lists_sharing_an_image_raise_naming_it(tmp_path: Path) -> None:
    table = write_2017(tmp_path / "t.csv", ROWS)
    (tmp_path / "test.txt").write_text("00000004_000.png\n")
    (tmp_path / "tv.txt").write_text("00000001_000.png\n00000004_000.png\n")
    with pytest.raises(ManifestError, match=r"image 00000004_000\.png is also in"):
        curate_nih(table, train_list=tmp_path / "tv.txt", test_list=tmp_path / "test.txt")


def test_one_list_alone_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tv.txt").write_text("00000001_000.png\n")
    with pytest.raises(LungpriorError, match="both"):
        curate_nih(write_2017(tmp_path / "t.csv", ROWS), train_list=tmp_path / "tv.txt")


@pytest.mark.parametrize(
    "kwargs", [{"val_fraction": 1.0}, {"val_fraction": 0.5, "test_fraction": 0.5}, {"test_fraction": -0.1},
               {"no_finding_ratio": -1.0}, {"no_finding_ratio": float("nan")}],
)
def test_bad_numeric_options_raise(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(LungpriorError, match="must be"):
        curate_nih(write_2017(tmp_path / "t.csv", ROWS), **kwargs)


def test_images_dir_indexes_subfolders_and_reports_missing(tmp_path: Path) -> None:
    table = write_2017(tmp_path / "t.csv", ROWS)
    present = ["00000001_000.png", "00000001_001.png", "00000004_000.png", "00000005_000.png", "00000006_000.png"]
    for k, name in enumerate(present):
        folder = tmp_path / "nih" / f"images_{k % 2 + 1:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"png")
    result = curate_nih(table, images_dir=tmp_path / "nih")
    m = by_id(result.manifest)
    assert set(m.index) == set(present)
    for name, path in m["path"].items():
        assert Path(path).is_absolute()
        assert Path(path).name == name
        assert Path(path).is_file()
    # 3 and 7 are wanted but missing; 2 and 8 ("other" only) are not looked for.
    assert result.summary["missing_files"] == ["00000003_000.png", "00000007_000.png"]
    assert result.summary["excluded"]["missing_file"] == 2


def test_index_images_first_sorted_match_wins(tmp_path: Path) -> None:
    for folder in ("b", "a/deep"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x.png").write_bytes(b"1")
    (tmp_path / "y.png").write_bytes(b"1")
    index = index_images(tmp_path)
    assert index == {"x.png": (tmp_path / "a/deep/x.png").resolve(), "y.png": (tmp_path / "y.png").resolve()}
    with pytest.raises(LungpriorError, match="images folder not found"):
        index_images(tmp_path / "nope")


def test_all_images_missing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LungpriorError, match=r"no images left after curation .*'missing_file': 7"):
        curate_nih(write_2017(tmp_path / "t.csv", ROWS), images_dir=tmp_path / "empty")


def test_no_finding_subsampling_is_patient_consistent(tmp_path: Path) -> None:
    rows = [(f"{p:08d}_000.png", "Mass", str(p), "PA", "0.1") for p in range(1, 21)]
    rows += [(f"{p:08d}_{k:03d}.png", "No Finding", str(p), "PA", "0.1") for p in range(21, 61) for k in range(3)]
    rows += [(f"{p:08d}_{k:03d}.png", "No Finding", str(p), "PA", "0.1") for p in range(61, 81) for k in range(1)]
    table = write_2017(tmp_path / "t.csv", rows)
    result = curate_nih(table, no_finding_ratio=1.0, seed=4)
    m = result.manifest
    for name in ("train", "val", "test"):
        part = m[m["split"] == name]
        assert part["No Finding"].sum() == (1 - part["No Finding"]).sum()  # exactly R × positives
    nf = m[m["No Finding"] == 1]
    full = pd.Series([r[2] for r in rows if r[1] == "No Finding"]).value_counts()
    assert (nf["patient_id"].value_counts() == full[nf["patient_id"].unique()]).all()  # whole patients
    assert result.summary["excluded"]["no_finding_subsampled"] == 140 - nf.shape[0]
    again = curate_nih(table, no_finding_ratio=1.0, seed=4).manifest
    pd.testing.assert_frame_equal(m, again)
    assert curate_nih(table, no_finding_ratio=0.0).summary["label_counts"]["No Finding"]["total"] == 0


def test_invalid_rows_are_recorded_not_fatal(tmp_path: Path) -> None:
    rows = [*ROWS, ("00000009_000.png", "", "9", "PA", "0.1"), ("00000010_000.png", "Mass", "", "PA", "0.1"),
            ("00000011_000.png", "No Finding|Mass", "11", "PA", "0.1"), ("00000012_000.png", "Mass", "12", "PA", "x")]
    result = curate_nih(write_2017(tmp_path / "t.csv", rows))
    assert result.summary["invalid_rows"] == {
        "00000009_000.png": "empty Finding Labels",
        "00000010_000.png": "empty Patient ID",
        "00000011_000.png": "No Finding together with other labels",
        "00000012_000.png": "non-numeric OriginalImagePixelSpacing[x",
    }
    assert result.summary["excluded"]["invalid_row"] == 4
    assert len(result.manifest) == 7


def _bad_tables() -> dict[str, bytes]:
    good = "\n".join([HEADER_2017, "00000001_000.png,Mass,0,1,50,M,PA,1,1,0.1,0.1,"])
    return {
        "no_image_index": good.replace("Image Index", "Image").encode(),
        "no_finding_labels": good.replace("Finding Labels", "Findings").encode(),
        "no_patient_id": good.replace("Patient ID", "Patient").encode(),
        "no_view_position": good.replace("View Position", "View").encode(),
        "binary_garbage": bytes(range(256)) * 8,
        "empty": b"",
        "header_only": HEADER_2017.encode(),
        "ragged": (good + "\n00000002_000.png,Mass,0,2,50,M,PA,1,1,0.1,0.1,,,,\n").encode(),
        "duplicate_image": (good + "\n00000001_000.png,Mass,0,1,50,M,PA,1,1,0.1,0.1,\n").encode(),
        "broken_gzip": gzip.compress(good.encode())[:30],
    }


@pytest.mark.parametrize("kind", list(_bad_tables()))
def test_malformed_tables_raise_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(_bad_tables()[kind])
    with pytest.raises(ManifestError) as info:
        read_nih_table(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    if kind.startswith("no_"):
        assert "missing column(s)" in message
    if kind == "duplicate_image":
        assert "00000001_000.png appears more than once" in message


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="label table not found"):
        curate_nih(tmp_path / "nope.csv")


def test_written_manifest_round_trips(tmp_path: Path) -> None:
    result = curate_nih(write_2017(tmp_path / "t.csv", ROWS))
    manifest_path, summary_path = write_curation(result, tmp_path / "out")
    back = read_manifest(manifest_path)
    assert back["image_id"].tolist() == result.manifest["image_id"].tolist()
    assert back["Mass"].tolist() == result.manifest["Mass"].tolist()
    assert json.loads(summary_path.read_text())["excluded"]["other_findings_only"] == 3


def _cli_args(*args: str) -> list[str]:
    """Prefix the subcommand name when the app has several commands (a lone command is the app itself)."""
    return ["nih", *args] if isinstance(typer.main.get_command(app), typer.core.TyperGroup) else list(args)


def test_cli_success_writes_both_files(tmp_path: Path) -> None:
    table = write_2017(tmp_path / "t.csv", ROWS)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, _cli_args("--labels", str(table), "--out", str(out), "--views", "PA,AP"))
    assert result.exit_code == 0, result.output
    assert (out / "manifest.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["images"]["total"] == 7
    assert "Mass" in result.stdout
    assert "other findings only 3" in result.stdout


def test_cli_malformed_csv_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, _cli_args("--labels", str(bad), "--out", str(tmp_path / "out")))
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"error: {bad}: missing column(s) Image Index")
    assert not (tmp_path / "out").exists()


def test_cli_bad_views_exits_2(tmp_path: Path) -> None:
    table = write_2017(tmp_path / "t.csv", ROWS)
    result = CliRunner().invoke(app, _cli_args("--labels", str(table), "--out", str(tmp_path), "--views", "LL"))
    assert result.exit_code == 2
    assert "(unknown: 'LL')" in result.stderr
