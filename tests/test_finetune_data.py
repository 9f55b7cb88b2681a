"""Fine-tuning data: pairs from segdata and phantom folders, per-lung boxes, jitter, targets, metrics, config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungprior.errors import LungpriorError
from lungprior.segment.finetune import (
    AUTO_BUDGET,
    FinetuneConfig,
    LungMetrics,
    jitter_boxes,
    jitter_rng,
    load_pairs,
    lung_boxes,
)
from lungprior.segment.finetune.data import lung_components, lung_targets, mask_to_input, with_replay
from lungprior.segment.finetune.dataset import EpochShuffle, check_pairs
from lungprior.segment.preprocess import preprocess_longest_side, preprocess_stretch


def two_lungs(h: int = 120, w: int = 100) -> np.ndarray:
    """Two elliptic lungs (image left larger) and a one-pixel speck that must be ignored."""
    yy, xx = np.mgrid[:h, :w]
    left = ((xx - 28) / 18) ** 2 + ((yy - 60) / 45) ** 2 <= 1
    right = ((xx - 72) / 15) ** 2 + ((yy - 58) / 40) ** 2 <= 1
    mask = left | right
    mask[2, 50] = True
    return mask


# --- boxes, jitter, targets ------------------------------------------------------------------------------


def test_one_box_per_lung_in_original_pixels() -> None:
    mask = two_lungs()
    comps = lung_components(mask)
    assert len(comps) == 2 and comps[0].sum() > comps[1].sum()  # speck dropped; image left first
    boxes = lung_boxes(mask)
    assert boxes.shape == (2, 4)
    for comp, (x0, y0, x1, y1) in zip(comps, boxes, strict=True):
        rows, cols = np.nonzero(comp)
        assert (x0, y0, x1, y1) == (cols.min(), rows.min(), cols.max(), rows.max())
        inside = np.zeros_like(comp)
        inside[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = True
        assert comp[~inside].sum() == 0  # the box contains its whole lung
    assert boxes[0][2] < boxes[1][0]  # the two boxes are the two lungs, not their union


def test_jitter_moves_sides_by_fractions_of_the_box_and_is_seeded() -> None:
    mask = two_lungs()
    _, tr = preprocess_longest_side(mask.astype(np.float32), 256)
    base = tr.boxes_to_input(lung_boxes(mask))
    jittered = jitter_boxes(base, 0.04, 0.10, 256, jitter_rng(0, 3, 7))
    size = np.stack([base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]] * 2, axis=1)
    grow = (jittered - base) * np.array([-1, -1, 1, 1]) / size
    assert (grow >= -0.04 - 1e-9).all() and (grow <= 0.10 + 1e-9).all() and (grow < 0).any() and (grow > 0).any()
    assert (jittered >= 0).all() and (jittered <= 256).all()
    assert np.array_equal(jittered, jitter_boxes(base, 0.04, 0.10, 256, jitter_rng(0, 3, 7)))
    assert not np.array_equal(jittered, jitter_boxes(base, 0.04, 0.10, 256, jitter_rng(0, 4, 7)))  # next epoch
    assert not np.array_equal(jittered, jitter_boxes(base, 0.04, 0.10, 256, jitter_rng(1, 3, 7)))  # other seed
    edge = np.array([[0.0, 0.0, 256.0, 256.0], [3.0, 250.0, 100.0, 252.0]])
    clipped = jitter_boxes(edge, 0.5, 0.5, 256, np.random.default_rng(0))
    assert (clipped >= 0).all() and (clipped <= 256).all()
    assert (clipped[:, 2] > clipped[:, 0]).all() and (clipped[:, 3] > clipped[:, 1]).all()  # never inverted
    out = np.stack([jitter_boxes(np.array([[50.0, 40.0, 150.0, 240.0]]), 0.04, 0.10, 256, jitter_rng(0, e, 0))[0]
                    for e in range(200)])
    assert out[:, 0].min() >= 50 - 10 - 1e-9 and out[:, 0].max() <= 50 + 4 + 1e-9  # width 100
    assert out[:, 3].min() >= 240 - 8 - 1e-9 and out[:, 3].max() <= 256  # height 200, clipped at the edge


@pytest.mark.parametrize("stretch", [False, True])
def test_targets_are_separate_lungs_at_low_resolution(stretch: bool) -> None:
    mask = two_lungs()
    if stretch:
        _, tr = preprocess_stretch(mask.astype(np.float32), 1024)
    else:
        _, tr = preprocess_longest_side(mask.astype(np.float32), 256)
    t = lung_targets(mask, tr)
    assert t.low_res.shape == (2, 256, 256) and t.low_res.dtype == np.uint8
    assert t.input_masks.shape == (2, tr.input_size, tr.input_size)
    assert not (t.low_res[0] & t.low_res[1]).any() and t.low_res[0].any() and t.low_res[1].any()
    assert t.low_res[0].nonzero()[1].max() < t.low_res[1].nonzero()[1].min()
    sx, sy = tr.scale
    for k in range(2):  # each input-space target lies in its (unjittered) box, up to one original pixel
        rows, cols = np.nonzero(t.input_masks[k])
        x0, y0, x1, y1 = t.boxes[k]
        assert cols.min() >= x0 - 1 and cols.max() <= x1 + sx and rows.min() >= y0 - 1 and rows.max() <= y1 + sy
    if not stretch:  # LiteMedSAM pads at the bottom/right: no lung beyond the resized area
        assert not t.input_masks[:, tr.resized_size[0] :, :].any()
    union = mask_to_input(mask, tr)
    assert union.sum() >= t.input_masks.sum()


def test_epoch_shuffle_depends_on_seed_and_epoch_only() -> None:
    a, b = EpochShuffle(10, seed=0), EpochShuffle(10, seed=0)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    b.set_epoch(3)
    assert list(a) != list(b)


# --- metrics -----------------------------------------------------------------------------------------------


def test_lung_metrics_values() -> None:
    truth = np.zeros((40, 50), dtype=bool)
    truth[10:30, 10:30] = True
    metrics = LungMetrics()
    assert metrics(truth, truth) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    shifted = np.roll(truth, 2, axis=1)
    got = metrics(shifted, truth)
    assert got["dice"] == pytest.approx(2 * 360 / 800) and got["iou"] == pytest.approx(360 / 440)
    assert got["hd95"] == pytest.approx(2.0)
    empty = metrics(np.zeros_like(truth), truth)
    assert empty["dice"] == 0.0 and empty["hd95"] == pytest.approx(np.hypot(40, 50))
    with pytest.raises(LungpriorError, match="differ"):
        metrics(truth[:10], truth)


# --- pairs -------------------------------------------------------------------------------------------------


def _png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_load_pairs_from_segdata_and_phantom_folders(tmp_path) -> None:
    seg = tmp_path / "seg"
    mask = (two_lungs() * 255).astype(np.uint8)
    rows = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        _png(seg / "images" / f"im{i}.png", np.full(mask.shape, 40 * i, dtype=np.uint8))
        _png(seg / "masks" / f"im{i}_mask.png", mask)
        rows.append({"image_id": f"im{i}", "path": f"images/im{i}.png", "mask_path": f"masks/im{i}_mask.png",
                     "split": split, "pixel_spacing_mm": ""})
    pd.DataFrame(rows).to_csv(seg / "manifest.csv", index=False)
    train = load_pairs(seg, "train")
    assert [p.image_id for p in train] == ["im0", "im1"]
    assert train[1].image == (seg / "images" / "im1.png").resolve() and train[1].mask.name == "im1_mask.png"
    assert train[1].mask.is_file() and [p.image_id for p in load_pairs(seg, "test")] == ["im3"]

    ph = tmp_path / "ph"
    cols = ["image_id", "path", "patient_id", "view", "split", "Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis",
            "No Finding", "pixel_spacing_mm"]
    df = pd.DataFrame([["p0", "images/p0.png", "P0", "PA", "val", 0, 0, 0, 0, 0, 1, 1.0],
                       ["p1", "images/p1.png", "P1", "PA", "train", 0, 0, 0, 0, 0, 1, 1.0]], columns=cols)
    for image_id in df["image_id"]:
        _png(ph / "images" / f"{image_id}.png", np.zeros(mask.shape, np.uint8))
        _png(ph / "masks" / f"{image_id}.png", mask)
    df.to_csv(ph / "manifest.csv", index=False)
    val = load_pairs(ph, "val")
    assert len(val) == 1 and val[0].mask == ph / "masks" / "p0.png" and val[0].split == "val"

    (seg / "masks" / "im1_mask.png").write_bytes(b"not a png")
    _png(seg / "masks" / "im0_mask.png", np.zeros(mask.shape, np.uint8))
    _png(seg / "images" / "im4.png", np.zeros(mask.shape, np.uint8))
    _png(seg / "masks" / "im4_mask.png", mask)
    extra = pd.DataFrame([{"image_id": "im4", "path": "images/im4.png", "mask_path": "masks/im4_mask.png",
                           "split": "train", "pixel_spacing_mm": ""}])
    pd.concat([pd.DataFrame(rows), extra]).to_csv(seg / "manifest.csv", index=False)
    ok, errors = check_pairs(load_pairs(seg, "train"))
    assert [p.image_id for p in ok] == ["im4"]
    assert [e["image_id"] for e in errors] == ["im0", "im1"]
    assert errors[0]["error"].endswith("im0_mask.png: empty lung mask (no pixel >= 128)")
    assert "im1_mask.png: " in errors[1]["error"] and errors[1]["split"] == "train"

    # replay: the other folder's training films are appended (at most replay_max); repeated ids are refused
    assert [p.image_id for p in with_replay(ok, ph)] == ["im4", "p1"]
    assert with_replay(ok, None) == ok and [p.image_id for p in with_replay(ok, ph, 1)] == ["im4", "p1"]
    assert [p.image_id for p in with_replay(load_pairs(ph, "train"), seg, 2)] == ["p1", "im0", "im1"]  # capped
    with pytest.raises(LungpriorError, match="also in the training data"):
        with_replay(load_pairs(ph, "train"), ph)
    df[df["split"] == "val"].to_csv(tmp_path / "val_only.csv", index=False)
    (ph / "manifest.csv").rename(ph / "all.csv")
    (tmp_path / "val_only.csv").rename(ph / "manifest.csv")
    with pytest.raises(LungpriorError, match="no training image–mask pairs"):
        with_replay(ok, ph)
    with pytest.raises(LungpriorError, match="--replay-max must be an integer >= 1"):
        FinetuneConfig(data="d", out="o", replay=str(ph), replay_max=0)
    assert FinetuneConfig(data="d", out="o", replay="ph").replay.startswith("/")

    with pytest.raises(LungpriorError, match="split 'dev'"):
        load_pairs(ph, "dev")
    with pytest.raises(LungpriorError, match=r"no manifest\.csv"):
        load_pairs(tmp_path / "nothing", "train")
    (ph / "masks" / "p0.png").unlink()
    (ph / "masks" / "p1.png").unlink()
    (ph / "masks").rmdir()
    with pytest.raises(LungpriorError, match="no masks/ folder"):
        load_pairs(ph, "train")


# --- config ------------------------------------------------------------------------------------------------


def test_config_round_trips_through_json_and_rejects_bad_values(tmp_path) -> None:
    cfg = FinetuneConfig(data="d", out=str(tmp_path / "o"), epochs=3, lr=1e-4, devices="2", max_train=5)
    assert cfg.devices == 2 and cfg.recipe.lr == 1e-4 and cfg.data.startswith("/")
    cfg.to_json(tmp_path / "c.json")
    assert FinetuneConfig.from_json(tmp_path / "c.json") == cfg
    assert json.loads((tmp_path / "c.json").read_text())["epochs"] == 3
    default = FinetuneConfig(data="d", out="o")
    assert default.recipe.lr == 2e-4 and (default.jitter_in, default.jitter_out) == (0.04, 0.10)
    assert default.budget("cpu") == AUTO_BUDGET["cpu"] and default.budget("gpu") == (12, 6)
    assert FinetuneConfig(data="d", out="o", epochs=3, views=1).budget("gpu") == (3, 1)
    assert FinetuneConfig(data="d", out="o", backend="medsam").recipe.lr == 1e-4
    bad = [
        ({"backend": "sam2"}, r"--backend 'sam2': choose one of litemedsam, medsam"),
        ({"freeze_encoder": "maybe"}, "--freeze-encoder 'maybe'"),
        ({"devices": "two"}, "--devices must be"),
        ({"devices": 0}, "--devices must be"),
        ({"epochs": 0}, "--epochs must be an integer >= 1"),
        ({"precision": "64"}, "--precision '64'"),
        ({"lr": -1.0}, "--lr must be in"),
        ({"views": 0}, "--views must be an integer >= 1"),
        ({"jitter_out": 0.9}, "--jitter-out must be a fraction"),
        ({"prior_prompts": 1.5}, "--prior-prompts must be a fraction"),
    ]
    for kwargs, message in bad:
        with pytest.raises(LungpriorError, match=message):
            FinetuneConfig(data="d", out="o", **kwargs)
    with pytest.raises(LungpriorError, match="unknown field"):
        FinetuneConfig.from_dict({"data": "d", "out": "o", "colour": 1})


def test_replay_auto_rehearses_generated_synthetic_films_unless_the_data_are_synthetic(tmp_path) -> None:
    from lungprior.data.lock import folder_lock
    from lungprior.segment.finetune.data import REHEARSAL, replay_folder

    assert FinetuneConfig(data="d", out="o").replay == "auto"  # the default rehearses
    assert FinetuneConfig(data="d", out="o", replay=None).replay == "none"  # older run configs: no rehearsal
    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    (synthetic / "phantom.json").write_text("{}")
    assert replay_folder("none", real, tmp_path / "run") is None
    assert replay_folder("auto", synthetic, tmp_path / "run") is None  # a synthetic set rehearses itself
    assert replay_folder(str(tmp_path / "mine"), real, tmp_path / "run") == tmp_path / "mine"
    assert not (tmp_path / "run").exists()

    folder = replay_folder("auto", real, tmp_path / "run")
    assert folder == tmp_path / "run" / "replay"
    pairs = load_pairs(folder, "train")
    assert len(pairs) == REHEARSAL.n == 16 and all(p.image.is_file() and p.mask.is_file() for p in pairs)
    assert json.loads((folder / "phantom.json").read_text())["seed"] == 1
    stamp = (folder / "manifest.csv").stat().st_mtime_ns
    with folder_lock(folder, "phantom"):  # finished films are reused, not regenerated (the lock would refuse)
        assert replay_folder("auto", real, tmp_path / "run") == folder
    assert (folder / "manifest.csv").stat().st_mtime_ns == stamp


def test_replay_auto_waits_for_another_process_writing_the_films(tmp_path, monkeypatch) -> None:
    import lungprior.segment.finetune.data as data
    from lungprior.errors import FolderBusyError

    calls = []

    def busy(cfg, folder, **kw):  # another rank holds the folder; it finishes after our second try
        calls.append(folder)
        if len(calls) == 2:
            (folder / "manifest.csv").write_text("image_id\n")
        raise FolderBusyError(f"{folder}: in use")

    monkeypatch.setattr(data, "generate_benchmark", busy)
    monkeypatch.setattr(data.time, "sleep", lambda s: None)
    (tmp_path / "run" / "replay").mkdir(parents=True)
    assert data.replay_folder("auto", tmp_path, tmp_path / "run") == tmp_path / "run" / "replay"
    assert len(calls) == 2
    (tmp_path / "run" / "replay" / "manifest.csv").unlink()
    monkeypatch.setattr(data, "REHEARSAL_WAIT_S", -1.0)
    with pytest.raises(FolderBusyError, match="in use"):  # gives up after the wait
        data.replay_folder("auto", tmp_path, tmp_path / "run")
