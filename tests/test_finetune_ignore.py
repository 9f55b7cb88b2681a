"""Grey 127 ("not annotated") in fine-tuning: not lung in targets, left out of the loss and of the metrics."""

from __future__ import annotations

import numpy as np
import torch
from monai.losses import DiceLoss
from PIL import Image

from lungprior.segment.finetune import LungMetrics, LungPromptDataset, MaskedSegLoss
from lungprior.segment.finetune.data import TrainingPair, lung_targets, read_pair
from lungprior.segment.finetune.losses import hard_iou
from lungprior.segment.preprocess import preprocess_longest_side


def coded_mask(h: int = 96, w: int = 96) -> np.ndarray:
    """0 background, 255 two lungs, 127 a band over the lower right lung (not annotated)."""
    raw = np.zeros((h, w), np.uint8)
    raw[10:80, 8:40] = 255
    raw[12:84, 56:90] = 255
    raw[60:90, 50:96] = 127
    return raw


def test_loss_ignores_logits_on_ignored_pixels_and_equals_plain_loss_without_them() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 32, 32, generator=gen) * 3
    targets = (torch.rand(3, 1, 32, 32, generator=gen) > 0.5).float()
    ignore = torch.zeros_like(targets)
    ignore[:, :, 20:, :] = 1
    loss = MaskedSegLoss()
    changed = logits.clone()
    changed[ignore.bool()] = torch.randn(int(ignore.sum()), generator=gen) * 50  # anything there
    flipped = targets.clone()
    flipped[ignore.bool()] = 1 - flipped[ignore.bool()]
    base = loss(logits, targets, ignore)
    assert torch.allclose(base, loss(changed, targets, ignore)) and torch.allclose(base, loss(logits, flipped, ignore))
    assert not torch.allclose(base, loss(changed, targets))  # unmasked, those pixels would count
    plain = DiceLoss(sigmoid=True, squared_pred=True)(logits, targets) + torch.nn.BCEWithLogitsLoss()(logits, targets)
    assert torch.allclose(loss(logits, targets), plain, atol=1e-6)
    assert torch.allclose(loss(logits, targets, torch.zeros_like(ignore)), plain, atol=1e-6)
    assert torch.allclose(hard_iou(logits, targets, ignore), hard_iou(changed, targets, ignore))


def test_grey_127_is_not_lung_in_targets_and_is_the_ignore_plane(tmp_path) -> None:
    raw = coded_mask()
    Image.fromarray(raw).save(tmp_path / "m.png")
    Image.fromarray(np.full(raw.shape, 128, np.uint8)).save(tmp_path / "im.png")
    pair = TrainingPair("im", tmp_path / "im.png", tmp_path / "m.png", "train")
    _, mask, ignore = read_pair(pair)
    assert np.array_equal(mask, raw == 255) and np.array_equal(ignore, raw == 127)
    _, tr = preprocess_longest_side(mask.astype(np.float32), 256)
    t = lung_targets(mask, tr, ignore)
    assert t.ignore.shape == (256, 256) and t.ignore.any()
    assert not (t.low_res.astype(bool) & t.ignore.astype(bool)).any()  # ignored pixels are never lung targets
    assert t.low_res.sum() == lung_targets(raw == 255, tr).low_res.sum()
    plain = lung_targets(mask, tr)
    assert not plain.ignore.any()

    from lungprior.segment.registry import create_backend

    backend = create_backend("litemedsam", None, torch.device("cpu"))
    item = LungPromptDataset([pair], backend, for_eval=True)[0]
    assert torch.equal(item["ignore"], torch.from_numpy(t.ignore))
    assert torch.equal(item["union"], torch.from_numpy(mask))
    assert torch.equal(item["ignore_full"], torch.from_numpy(ignore))


def test_metrics_skip_ignored_pixels() -> None:
    raw = coded_mask()
    truth, ignore = raw == 255, raw == 127
    pred = truth | ignore  # lung everywhere the annotator did not judge: not a mistake
    metrics = LungMetrics()
    assert metrics(pred, truth, ignore) == metrics(truth, truth) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    assert metrics(pred, truth)["dice"] < 1.0
