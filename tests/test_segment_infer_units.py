"""Model-free parts of the segmentation run: mask names, prompts, lung candidates, QC, logs, shards, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lungprior.errors import LungpriorError, ManifestError
from lungprior.segment.infer import (
    QC_COLUMNS,
    AutoPromptConfig,
    lung_candidates,
    mask_name,
    mask_path_for,
    merge_shards,
    parse_shard,
    prior_boxes,
    qc_row,
    read_prompt_csv,
    resolve_engine,
    resolve_shard,
    whole_box,
)
from lungprior.segment.infer.cascade import work_transform
from lungprior.segment.infer.prompts import box_around, edges_to_pixels, grow_box, largest_component
from lungprior.segment.infer.qc import failed_checks, flag_counts, with_film_size
from lungprior.segment.infer.records import ERROR_COLUMNS, CsvLog, read_rows, repair
from lungprior.segment.infer.settings import check_settings, run_settings
from lungprior.segment.infer.shards import local_device
from lungprior.segment.preprocess import Transform


def test_mask_names_drop_one_image_extension(tmp_path) -> None:
    assert mask_name("00000001_000.png") == "00000001_000.png"
    assert mask_name("phantom_00001") == "phantom_00001.png"
    assert mask_name("scan.DCM") == "scan.png" and mask_name("a.b.tiff") == "a.b.png"
    assert mask_name("1.2.840.5") == "1.2.840.5.png" and mask_name(".png").startswith("png-")  # never hidden
    assert mask_path_for(tmp_path, "x.jpg") == tmp_path / "x.png"
    names = {mask_name(bad) for bad in ("", "a/b.png", "..", "a\\b")}  # path-like ids: safe names, not refusals
    assert len(names) == 4 and all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)


def test_prior_and_whole_boxes_and_box_geometry() -> None:
    boxes = prior_boxes((1000, 800))
    assert boxes.shape == (2, 4) and boxes[0, 2] <= 400 <= boxes[1, 0]  # one per side of the midline
    assert np.allclose(boxes[0], [64, 80, 384, 850])
    assert whole_box((10, 20)).tolist() == [[0, 0, 19, 9]]
    mask = np.zeros((100, 200), bool)
    mask[10:60, 20:120] = True
    assert box_around(mask, 0.0).tolist() == [20, 10, 120, 60]
    assert box_around(mask, 0.1).tolist() == [10, 5, 130, 65]
    assert box_around(mask, 0.5).tolist() == [0, 0, 170, 85]  # clipped to the image
    assert box_around(mask, 0.1, 0.3).tolist() == [10, 5, 130, 75]  # more room below the lung base
    assert AutoPromptConfig(pad=0.1).bottom_pad == 0.1 and AutoPromptConfig(pad_bottom=0.2).bottom_pad == 0.2
    with pytest.raises(LungpriorError, match="pad"):
        AutoPromptConfig(pad_bottom=0.9)
    assert edges_to_pixels(np.array([20.0, 10, 120, 60]), (100, 200), (200, 400)).tolist() == [40, 20, 239, 119]
    for bad in ({"refine_steps": 0}, {"grow_steps": -1}, {"grow": 0.0}, {"grow": 0.8}):
        with pytest.raises(LungpriorError, match="refine_steps >= 1, grow_steps >= 0"):
            AutoPromptConfig(**bad)
    with pytest.raises(LungpriorError, match="two relative"):
        AutoPromptConfig(prior_boxes=((0, 0, 1, 1),))


def test_work_transform_caps_the_longest_side() -> None:
    t = Transform((1955, 1841), (256, 241), 256, (256 / 1955, 256 / 1955))
    assert work_transform(t).original_size == (256, 241)
    small = Transform((100, 80), (256, 205), 256, (2.56, 2.56))
    assert work_transform(small) == small


def _two_lungs(h: int = 100, w: int = 100) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[15:80, 10:42] = True  # image left = patient's right lung
    m[15:85, 58:92] = True
    return m


def test_lung_candidates_keep_the_largest_plausible_one_per_side() -> None:
    two = _two_lungs()
    right, left = lung_candidates(np.stack([two, np.zeros_like(two)]))
    assert right.sum() == 65 * 32 and left.sum() == 70 * 34 and right[50, 20] and left[50, 70]
    across = np.zeros_like(two)
    across[20:80, 30:70] = True  # straddles the midline: no side
    speck = np.zeros_like(two)
    speck[40:43, 10:13] = True  # too small
    flat = np.zeros_like(two)
    flat[40:48, 55:95] = True  # not tall enough
    huge = np.zeros_like(two)
    huge[:, :48] = True  # 48 % of the image
    assert lung_candidates(np.stack([across, speck, flat, huge])) == [None, None]
    right, left = lung_candidates(np.stack([speck | (two & (np.arange(100) < 50)), flat]))
    assert right is not None and right.sum() == 65 * 32 and left is None
    assert largest_component(np.zeros((5, 5), bool)) is None


def test_qc_rows_flag_empty_and_implausible_masks() -> None:
    two = _two_lungs()
    prob = np.where(two, 0.97, 0.1).astype(np.float32)
    ok = qc_row("a", two, prob, "auto")
    assert ok["flag"] == "ok" and ok["reason"] == "" and ok["n_components"] == 2
    assert ok["area_fraction"] == pytest.approx((65 * 32 + 70 * 34) / 1e4)
    assert ok["lr_area_ratio"] == pytest.approx(65 * 32 / (70 * 34)) and ok["mean_prob"] == pytest.approx(0.97)
    empty = qc_row("b", np.zeros((50, 50), bool), np.zeros((50, 50)), "whole")
    assert (empty["flag"], empty["reason"], empty["area_fraction"], empty["prompt_source"]) == (
        "empty", "no lung pixels", 0.0, "whole")
    one = two.copy()
    one[:, 50:] = False
    assert qc_row("c", one, prob, "auto")["reason"] == "one side 0.00 x the other (< 0.5)"
    three = two.copy()
    three[88:98, 44:56] = True  # 1.2 % of the image
    assert qc_row("d", three, prob, "auto")["reason"] == "3 components (> 2)"
    three[92:97, 2:8] = True  # fragments under 1 % of the image are not counted
    assert qc_row("d", three, prob, "auto")["n_components"] == 3
    full = np.ones((20, 20), bool)
    row = qc_row("e", full, np.ones((20, 20)), "prior")
    assert row["flag"] == "implausible"  # one blob: counted on the side of its centroid, the other side is empty
    assert row["reason"] == (
        "area fraction 1.000 outside [0.08, 0.65]; one side 0.00 x the other (< 0.5); "
        "lung covers 1.00 of the image border (> 0.25)"
    )


def test_qc_flags_real_film_failures() -> None:
    two = _two_lungs()
    prob = np.where(two, 0.97, 0.1).astype(np.float32)
    assert qc_row("ok", two, prob, "auto", stability=0.99)["flag"] == "ok"
    unsure = qc_row("p", two, np.where(two, 0.8, 0.1), "auto")
    assert unsure["flag"] == "implausible" and unsure["reason"] == "mean probability 0.800 (< 0.92)"
    shaky = qc_row("s", two, prob, "auto", stability=0.9)
    assert shaky["reason"] == "re-decoding agrees at Dice 0.900 (< 0.965)" and shaky["stability"] == 0.9
    doubtful = qc_row("i", two, prob, "auto", stability=0.99, pred_iou=0.70)
    assert doubtful["reason"] == "predicted IoU 0.700 (< 0.74)" and doubtful["pred_iou"] == 0.70
    assert qc_row("j", two, prob, "csv", pred_iou=0.80)["flag"] == "ok"
    assert failed_checks(doubtful["reason"]) == ["predicted IoU"]
    cut = two.copy()
    rows, cols = np.nonzero(two[:, :50])
    r0, c0 = rows.min(), cols.min()
    cut[r0 + 10 :, c0 + 8 :50] = False  # an L-shaped lung: an opacity cut out of its lower lateral part
    row = qc_row("c", cut, prob, "auto")
    assert row["box_fill"] < 0.4 and "fills" in row["reason"]
    edge = two.copy()
    edge[:, :3] = True  # a leak along the whole left edge of the film
    edge[:3, :] = True
    assert "image border" in qc_row("e", edge, np.where(edge, 0.97, 0.1), "auto")["reason"]


def test_qc_accepts_normal_anatomy_and_counts_flags_per_check() -> None:
    """A child's or cardiomegalic heart: the left lung field at 0.55 x the right passes; 0.45 x does not."""
    mask = np.zeros((200, 200), bool)
    mask[30:170, 20:90] = True  # the patient's right lung (image left)
    for width, flag in ((38, "ok"), (32, "implausible")):  # 38/70 = 0.54, 32/70 = 0.46
        left = mask.copy()
        left[30:170, 110 : 110 + width] = True
        row = qc_row("child", left, np.where(left, 0.97, 0.1), "auto", stability=0.99)
        assert row["flag"] == flag, row["reason"]
    small = with_film_size(qc_row("s", _two_lungs(), np.where(_two_lungs(), 0.97, 0.1), "auto"), (100, 100))
    assert small["flag"] == "implausible" and small["reason"].startswith("film of 100x100 pixels")
    rows = [small, {"flag": "ok", "reason": ""}, {"flag": "empty", "reason": "blank image (no contrast)"},
            {"flag": "implausible", "reason": "one side 0.10 x the other (< 0.5); mean probability 0.800 (< 0.92)"}]
    assert flag_counts(rows) == {"small film": 1, "blank": 1, "side ratio": 1, "probability": 1}
    assert failed_checks(small["reason"]) == ["small film"]


def test_prompt_csv_groups_boxes_and_rejects_bad_rows(tmp_path) -> None:
    good = tmp_path / "p.csv"
    good.write_text("image_id,x0,y0,x1,y1\nb.png,1,2,3,4\na,0,0,5,5\nb.png,5,6,7,8\n")
    boxes = read_prompt_csv(good)
    assert list(boxes) == ["b.png", "a"] and boxes["b.png"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    cases = {
        "image_id,x0,y0,x1\na,1,2,3\n": r"prompt CSV is missing column\(s\) y1",
        "image_id,x0,y0,x1,y1\na,1,2,x,4\n": r"line 2 \(a\): box coordinates must be numbers",
        "image_id,x0,y0,x1,y1\na,-1,2,3,4\n": r"line 2 \(a\): need 0 <= x0",
        "image_id,x0,y0,x1,y1\n": "has no rows",
    }
    for k, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{k}.csv"
        path.write_text(text)
        with pytest.raises(ManifestError, match=message):
            read_prompt_csv(path)


def test_logs_drop_partial_rows_and_shards_merge(tmp_path) -> None:
    cols = ERROR_COLUMNS
    with CsvLog(tmp_path / "errors.shard-1.csv", cols) as log:
        log.append({"image_id": "b", "path": "/x/b.png", "reason": "file not found"})
        log.append({"image_id": "a", "path": "/x/a.png", "reason": "old reason, with a comma"})
    with open(tmp_path / "errors.shard-1.csv", "a") as fh:
        fh.write("c,/x/c.p")  # killed mid-row
    assert [r["image_id"] for r in read_rows(tmp_path / "errors.shard-1.csv", cols)] == ["b", "a"]
    repair(tmp_path / "errors.shard-1.csv", cols)
    assert (tmp_path / "errors.shard-1.csv").read_text().endswith("comma\"\n")
    with CsvLog(tmp_path / "errors.shard-0.csv", cols) as log:
        log.append({"image_id": "a", "path": "/x/a.png", "reason": "new"})
        log.append({"image_id": "d", "path": "/x/d.png", "reason": "gone"})
    with CsvLog(tmp_path / "qc.shard-0.csv", QC_COLUMNS) as log:
        log.append({"image_id": "d", "area_fraction": 0.3, "n_components": 2, "mean_prob": float("nan"),
                    "prompt_source": "auto", "flag": "ok"})
    qc, errors = merge_shards(tmp_path)
    assert errors.read_text().splitlines() == [
        "image_id,path,reason", 'a,/x/a.png,"old reason, with a comma"', "b,/x/b.png,file not found"]
    assert qc.read_text().splitlines()[1] == "d,0.300000,2,,,,,,,auto,ok,"  # d succeeded: its error row is dropped
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(LungpriorError, match="unexpected columns"):
        CsvLog(tmp_path / "bad.csv", cols)
    with pytest.raises(LungpriorError, match=r"no qc\.shard"):
        merge_shards(tmp_path / "nothing")


def test_shards_from_options_and_torchrun_environment() -> None:
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 2 ") == (0, 2)
    for bad in ("4/4", "1", "a/b", "0/0", "-1/2"):
        with pytest.raises(LungpriorError, match="shard"):
            parse_shard(bad)
    assert resolve_shard(None, env={}) is None and resolve_shard("0/1", env={}) is None
    assert resolve_shard(None, env={"RANK": "3", "WORLD_SIZE": "8"}) == (3, 8)
    assert resolve_shard("1/2", env={"RANK": "3", "WORLD_SIZE": "8"}) == (1, 2)  # the option wins
    assert local_device("cuda", env={"LOCAL_RANK": "2"}) == "cuda:2"
    assert local_device("cuda:0", env={"LOCAL_RANK": "2"}) == "cuda:0" and local_device("cpu", env={}) == "cpu"


def test_engine_choice_and_settings_guard(tmp_path) -> None:
    import torch

    assert resolve_engine("auto", torch.device("cpu")) == "onnx"
    assert resolve_engine("auto", torch.device("cuda")) == "torch" == resolve_engine("torch", torch.device("cpu"))
    assert resolve_engine("auto", torch.device("cpu"), "medsam") == "torch"  # ViT-B export: not parity-tested
    with pytest.raises(LungpriorError, match="unknown engine 'trt'"):
        resolve_engine("trt", torch.device("cpu"))
    check_settings(tmp_path, {"backend": "litemedsam", "prompt": "auto"})
    check_settings(tmp_path, {"backend": "litemedsam", "prompt": "auto"})
    with pytest.raises(LungpriorError, match=r'other settings \(prompt: "auto" -> "whole"\); use a new --out'):
        check_settings(tmp_path, {"backend": "litemedsam", "prompt": "whole"})
    auto = run_settings("litemedsam", None, "auto", "auto", AutoPromptConfig())
    older = json.loads(json.dumps(auto))
    del older["auto"]["grow_steps"], older["auto"]["grow"]  # a folder from before these settings existed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "segment.json").write_text(json.dumps(older))
    check_settings(tmp_path / "old", auto)  # resumes: the missing settings had their defaults
    with pytest.raises(LungpriorError, match="other settings \\(auto: "):
        check_settings(tmp_path / "old", run_settings("litemedsam", None, "auto", "auto",
                                                      AutoPromptConfig(grow_steps=2)))


class _RectEngine:
    """A stand-in for the model: each box's mask is a fixed rectangle inside it (none for the left prior box)."""

    name = "stub"

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def encode(self, batch):
        raise AssertionError("not used")

    def decode(self, embedding, boxes: np.ndarray):
        import torch

        self.calls.append(np.asarray(boxes).copy())
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes)):
            if len(self.calls) == 1 and k == 1:
                continue  # the coarse pass finds nothing on the left
            logits[k, 0, int(y0) + 20 : int(y1) - 20, int(x0) + 10 : int(x1) - 10] = 10.0
        return logits, torch.linspace(0.9, 0.8, len(boxes))[:, None]  # the IoU head's estimates


class _Backend:
    name = "stub"
    input_size = 256

    @staticmethod
    def postprocess(logits, transform):
        from lungprior.segment.preprocess import postprocess_longest_side

        return postprocess_longest_side(logits, transform)


def test_cascade_derives_lung_boxes_and_falls_back_to_the_prior_box() -> None:
    from lungprior.segment.infer import Cascade

    engine = _RectEngine()
    transform = Transform((256, 256), (256, 256), 256, (1.0, 1.0))
    pred = Cascade(engine, _Backend()).auto(None, transform)
    # coarse, refined, and the QC re-decode from boxes around the final lungs
    assert len(engine.calls) == 3 and [c.shape[1] for c in engine.calls] == [4, 4, 4]
    assert [c.shape[0] for c in engine.calls[:2]] == [2, 2] and 0.0 <= pred.stability <= 1.0
    priors = prior_boxes((256, 256))
    assert np.allclose(engine.calls[0], priors)
    assert pred.prompt_source == "auto+prior:left"
    assert np.allclose(pred.boxes[1], priors[1])  # the fallback
    x0, y0, x1, y1 = priors[0]
    rect = np.array([int(x0) + 10, int(y0) + 20, int(x1) - 10, int(y1) - 20], dtype=float)  # the coarse mask
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    padded = rect + 0.03 * np.array([-w, -h, w, h]) - np.array([0, 0, 1, 1])
    assert np.allclose(pred.boxes[0], padded)
    assert pred.mask.shape == (256, 256) and pred.mask.sum() > 0 and pred.prob.dtype == np.float32
    assert pred.pred_iou == pytest.approx(0.8)  # the lower of the final decode's two estimates


def test_grow_box_moves_only_the_edges_the_lung_reaches() -> None:
    lung = np.zeros((50, 50), bool)  # the work-size mask of a (100, 100) image
    lung[10:40, 10:25] = True  # reaches the bottom edge (y1 = 79 -> 39.5) and no other
    box = np.array([10.0, 10.0, 60.0, 79.0])
    grown = grow_box(box, lung, (100, 100), 0.1)
    assert grown is not None and grown[:3].tolist() == [10.0, 10.0, 60.0] and grown[3] == pytest.approx(86.0)
    assert grow_box(np.array([10.0, 10.0, 60.0, 90.0]), lung, (100, 100), 0.1) is None  # nothing touches
    lung[:, :] = True  # touches every edge, but three of them are the image's border
    assert grow_box(np.array([0.0, 0.0, 99.0, 60.0]), lung, (100, 100), 0.5).tolist() == [0, 0, 99, 90.5]
    assert grow_box(box, np.zeros((50, 50), bool), (100, 100), 0.1) is None


class _ClipEngine(_RectEngine):
    """A stand-in whose mask is the part of a fixed lung rectangle that lies inside the box."""

    LUNGS = ((30, 30, 110, 245), (140, 30, 225, 200))

    def decode(self, embedding, boxes: np.ndarray):
        import torch

        self.calls.append(np.asarray(boxes).copy())
        logits = torch.full((len(boxes), 1, 256, 256), -10.0)
        for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes)):
            lx0, ly0, lx1, ly1 = self.LUNGS[k]
            logits[k, 0, max(ly0, int(y0)) : min(ly1, int(y1)) + 1, max(lx0, int(x0)) : min(lx1, int(x1)) + 1] = 10
        return logits, torch.full((len(boxes), 1), 0.9)


def test_cascade_grows_a_box_that_cuts_the_lung() -> None:
    from lungprior.segment.infer import Cascade

    transform = Transform((256, 256), (256, 256), 256, (1.0, 1.0))
    cut = Cascade(_ClipEngine(), _Backend()).auto(None, transform)
    assert cut.boxes[0][3] < 245 and cut.mask[244, 60] == 0  # the prior box cut the right lung's base
    engine = _ClipEngine()
    grown = Cascade(engine, _Backend(), AutoPromptConfig(grow_steps=4)).auto(None, transform)
    assert grown.boxes[0][3] >= 245 and grown.mask[244, 60] == 1  # grown until it encloses the base
    assert np.allclose(grown.boxes[1], cut.boxes[1])  # the left lung was never cut
    assert grown.mask.sum() > cut.mask.sum() and len(engine.calls) <= 3 + 4
    again = Cascade(_ClipEngine(), _Backend()).boxes(None, transform, grown.boxes, "auto")
    assert np.array_equal(again.mask, grown.mask)  # the settled decode is the final one: not decoded twice
    assert len(engine.calls) == 5  # coarse, two grows, the settled one (no edge moved), the QC re-decode
