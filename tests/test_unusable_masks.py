"""Films without a usable lung mask (empty, or missing) are left out of masked training and evaluation the same
way in every mode, listed with the reason in the run folder; paired comparisons use the common films."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.classify import TrainConfig, make_dataset, predict_split, train
from lungprior.classify.data import prepare
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError, NoUsableMaskError
from lungprior.evaluate.run_eval import compare_runs
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import PREDICTIONS
from lungprior.masks import MaskSpec, prior_weight

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A benchmark whose masks folder has one empty mask in train and test, and one missing in val."""
    root = tmp_path_factory.mktemp("phantom")
    generate_benchmark(PhantomConfig(n=60, size=64, seed=6, val_fraction=0.2, test_fraction=0.2), root, workers=1,
                       progress=False)
    masks = root / "seg_masks"
    shutil.copytree(root / "masks", masks)
    df = pd.read_csv(root / "manifest.csv", dtype={"image_id": str})
    first = {s: df.loc[df["split"] == s, "image_id"].iloc[0] for s in ("train", "val", "test")}
    for split in ("train", "test"):  # what `segment` writes for a blank film
        Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / f"{first[split]}.png")
    (masks / f"{first['val']}.png").unlink()
    return root / "manifest.csv", masks, first


def _cfg(manifest: Path, masks: Path, out: Path, mode: str, **kw: object) -> TrainConfig:
    return TrainConfig(manifest=str(manifest), out=str(out), masks=str(masks), mode=mode, backbone="resnet10t",
                       image_size=32, epochs=1, batch_size=32, accelerator="cpu", devices="1", radius_px=3.0,
                       cache=str(out.parent / "cache"), **kw)


def test_empty_mask_is_its_own_error_type() -> None:
    with pytest.raises(NoUsableMaskError):
        prior_weight(np.zeros((8, 8), bool), MaskSpec("tight"))
    assert issubclass(NoUsableMaskError, LungpriorError)


@pytest.mark.parametrize("mode", ["tight", "loose", "soft", "original"])
def test_every_mode_leaves_out_the_same_films(bench, tmp_path: Path, mode: str) -> None:
    manifest, masks, first = bench
    prep = prepare(_cfg(manifest, masks, tmp_path / "run", mode), progress=False)
    reasons = dict(zip(prep.excluded["image_id"], prep.excluded["reason"], strict=True))
    assert set(reasons) == set(first.values())
    assert reasons[first["val"]].startswith("lung mask not found, expected")
    assert reasons[first["train"]].startswith("empty lung mask")
    for split in ("train", "val", "test"):
        ds = make_dataset(_cfg(manifest, masks, tmp_path / "run", mode), split, prepared=prep)
        frame = pd.read_csv(manifest, dtype={"image_id": str})
        assert first[split] not in ds.image_ids
        assert len(ds) == (frame["split"] == split).sum() - 1


@pytest.mark.filterwarnings("ignore::lungprior.evaluate.stats.DegenerateDataWarning")
def test_masked_training_evaluation_and_comparison(bench, tmp_path: Path) -> None:
    manifest, masks, first = bench
    run = tmp_path / "tight"
    result = train(_cfg(manifest, masks, run, "tight"), progress=False)  # stopped at the first empty mask before
    assert result.epochs_run == 1
    excluded = pd.read_csv(run / "excluded.csv", dtype=str)
    assert list(excluded.columns) == ["image_id", "reason", "action"]
    assert set(excluded["image_id"]) == set(first.values()) and set(excluded["action"]) == {"excluded"}
    test = predict_split(run, "test", progress=False)
    assert first["test"] not in set(test["image_id"])

    # an unmasked run of the same films (its predictions include the film the masked run left out)
    other = tmp_path / "original"
    other.mkdir()
    full = test.iloc[:1].assign(image_id=first["test"])
    pd.concat([test, full]).to_csv(other / PREDICTIONS, index=False)
    test.to_csv(run / PREDICTIONS, index=False)
    table = compare_runs(run, other, n_resamples=20)
    assert set(table["target"]) == {*FINDINGS, NO_FINDING, "macro AUROC"}
    (run / "excluded.csv").write_text("image_id,reason,action\n")  # without the list the films differ: refused
    with pytest.raises(LungpriorError, match="not evaluated on the same images"):
        compare_runs(run, other, n_resamples=20)


def _segment_run(bench, root: Path) -> tuple[Path, list[str]]:
    """A `segment`-like folder: masks/ and a qc.csv that flags two train films (and the empty one)."""
    manifest, masks, first = bench
    shutil.copytree(masks, root / "masks")
    df = pd.read_csv(manifest, dtype={"image_id": str})
    flagged = df.loc[df["split"] == "train", "image_id"].iloc[1:3].tolist()
    qc = pd.DataFrame({"image_id": df["image_id"], "flag": "ok", "reason": ""})
    qc.loc[qc["image_id"].isin(flagged), ["flag", "reason"]] = ["implausible", "one side 0.20 x the other (< 0.5)"]
    qc.loc[qc["image_id"] == first["train"], ["flag", "reason"]] = ["empty", "blank image (no contrast)"]
    qc.to_csv(root / "qc.csv", index=False)
    return root / "masks", flagged


def test_qc_failed_masks_are_left_out_unless_kept(bench, tmp_path: Path) -> None:
    manifest, _, first = bench
    masks, flagged = _segment_run(bench, tmp_path / "seg")
    prep = prepare(_cfg(manifest, masks, tmp_path / "run", "tight"), progress=False)
    rows = prep.excluded.set_index("image_id")
    assert set(rows.index) == {*first.values(), *flagged}  # the empty film is listed once, as empty
    for image_id in flagged:
        assert rows.loc[image_id, "reason"] == "lung mask failed QC: one side 0.20 x the other (< 0.5)"
        assert rows.loc[image_id, "action"] == "excluded" and image_id in prep.excluded_ids
    ds = make_dataset(_cfg(manifest, masks, tmp_path / "run", "tight"), "train", prepared=prep)
    assert not set(flagged) & set(ds.image_ids)
    kept = prepare(_cfg(manifest, masks, tmp_path / "run", "tight"), progress=False, allow_qc_fail=True)
    assert set(kept.excluded.loc[kept.excluded["action"] == "kept", "image_id"]) == set(flagged)
    ds = make_dataset(_cfg(manifest, masks, tmp_path / "run", "tight"), "train", prepared=kept)
    assert set(flagged) <= set(ds.image_ids) and first["train"] not in ds.image_ids


def test_train_command_says_how_many_it_left_out(bench, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lungprior.cli.main import app

    manifest, _, _ = bench
    masks, flagged = _segment_run(bench, tmp_path / "seg")
    args = ["train", "--manifest", str(manifest), "--masks", str(masks), "--mode", "tight", "--backbone", "resnet10t",
            "--image-size", "32", "--epochs", "1", "--accelerator", "cpu", "--devices", "1",
            "--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"films left out: {3 + len(flagged)} (lung mask failed QC: {len(flagged)};" in result.output
    excluded = pd.read_csv(tmp_path / "run" / "excluded.csv", dtype=str)
    assert set(excluded.loc[excluded["action"] == "excluded", "image_id"]) >= set(flagged)
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "kept"), "--allow-qc-fail"])
    assert result.exit_code == 0, result.output
    assert f"kept although QC failed (--allow-qc-fail): {len(flagged)}" in result.output


def test_experiment_config_key_keeps_qc_failed_films() -> None:
    from lungprior.experiment.config import ExperimentConfig

    assert ExperimentConfig(training={"allow_qc_fail": True}).training.allow_qc_fail is True
    assert ExperimentConfig().training.allow_qc_fail is False
