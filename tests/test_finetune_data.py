"""Fine-tuning data: pairs from segdata and phantom folders, per-lung boxes, jitter, targets, metrics, config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lungprior.errors import LungpriorError
from lungprior.segment.finetune import FinetuneConfig, LungMetrics, jitter_boxes, jitter_rng, load_pairs, lung_boxes
from lungprior.segment.finetune.augment import LungAugment, boxes_from_masks
from lungprior.segment.finetune.data import lung_components, lung_targets, mask_to_input
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


def test_jitter_moves_sides_outward_within_limit_and_is_seeded() -> None:
    mask = two_lungs()
    _, tr = preprocess_longest_side(mask.astype(np.float32), 256)
    base = tr.boxes_to_input(lung_boxes(mask))
    jittered = jitter_boxes(base, 5.0, 256, jitter_rng(0, 3, 7))
    grow = (jittered - base) * np.array([-1, -1, 1, 1])
    assert (grow >= 0).all() and (grow <= 5.0).all() and grow.max() > 1.0
    assert (jittered >= 0).all() and (jittered <= 256).all()
    assert np.array_equal(jittered, jitter_boxes(base, 5.0, 256, jitter_rng(0, 3, 7)))
    assert not np.array_equal(jittered, jitter_boxes(base, 5.0, 256, jitter_rng(0, 4, 7)))  # next epoch
    assert not np.array_equal(jittered, jitter_boxes(base, 5.0, 256, jitter_rng(1, 3, 7)))  # other seed
    # clipping never moves a side inward
    edge = np.array([[0.0, 0.0, 256.0, 256.0], [3.0, 250.0, 100.0, 252.0]])
    clipped = jitter_boxes(edge, 20.0, 256, np.random.default_rng(0))
    assert np.array_equal(clipped[0], edge[0])
    assert clipped[1][0] <= 3 and clipped[1][1] < 250 and clipped[1][2] > 100 and 252 <= clipped[1][3] <= 256


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


def test_augmentation_is_seeded_and_keeps_laterality() -> None:
    mask = two_lungs(96, 96)
    _, tr = preprocess_longest_side(mask.astype(np.float32), 256)
    t = lung_targets(mask, tr)
    image = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))
    masks = torch.from_numpy(t.input_masks)
    aug = LungAugment()
    img1, m1 = aug(image, masks, seed=5)
    img2, m2 = aug(image, masks, seed=5)
    img3, _ = aug(image, masks, seed=6)
    assert torch.equal(img1, img2) and torch.equal(m1, m2) and not torch.equal(img1, img3)
    assert img1.shape == (3, 256, 256) and img1.min() >= 0.0 and img1.max() <= 1.0
    assert set(m1.unique().tolist()) <= {0, 1}
    cx = [float(m1[k].nonzero()[:, 1].float().mean()) for k in range(2)]
    assert cx[0] < cx[1]  # no left-right flip
    area = masks.sum(dim=(1, 2)).float()
    assert ((m1.sum(dim=(1, 2)).float() / area - 1).abs() < 0.15).all()  # small affine only
    boxes, valid = boxes_from_masks(m1.bool())
    assert valid.tolist() == [True, True]
    rows, cols = m1[1].nonzero(as_tuple=True)
    assert boxes[1].tolist() == [cols.min().item(), rows.min().item(), cols.max().item(), rows.max().item()]
    empty_boxes, empty_valid = boxes_from_masks(torch.zeros(1, 8, 8, dtype=torch.bool))
    assert empty_valid.tolist() == [False] and empty_boxes.abs().sum() == 0


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
    assert FinetuneConfig(data="d", out="o").recipe.lr == 5e-5
    assert FinetuneConfig(data="d", out="o", backend="medsam").recipe.box_jitter == 20
    bad = [
        ({"backend": "sam2"}, r"--backend 'sam2': choose one of litemedsam, medsam"),
        ({"freeze_encoder": "maybe"}, "--freeze-encoder 'maybe'"),
        ({"devices": "two"}, "--devices must be"),
        ({"devices": 0}, "--devices must be"),
        ({"epochs": 0}, "--epochs must be an integer >= 1"),
        ({"precision": "64"}, "--precision '64'"),
        ({"lr": -1.0}, "--lr must be in"),
    ]
    for kwargs, message in bad:
        with pytest.raises(LungpriorError, match=message):
            FinetuneConfig(data="d", out="o", **kwargs)
    with pytest.raises(LungpriorError, match="unknown field"):
        FinetuneConfig.from_dict({"data": "d", "out": "o", "colour": 1})
