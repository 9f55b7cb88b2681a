"""The extra priors: nolung, bbox, crop and prior-loss, from MaskSpec through the cache to training."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lungprior.classify import TrainConfig, predict_split, train
from lungprior.classify.cache import ItemSource, render_item, render_item_with_prior
from lungprior.classify.data import make_dataset
from lungprior.classify.prior_loss import input_gradient, outside_share
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.evaluate.run_eval import evaluate_run
from lungprior.labels import FINDINGS
from lungprior.masks import MaskSpec, crop_region, dilate, kept_region, penalty_region, prior_weight, tight_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lungs() -> np.ndarray:
    seg = np.zeros((100, 120), dtype=bool)
    seg[20:80, 15:50] = True  # one lung
    seg[25:85, 70:105] = True  # the other
    return seg


def test_keys_and_validation() -> None:
    assert MaskSpec("nolung").key() == "nolung"
    assert MaskSpec("nolung", radius_mm=10).key() == "nolung-10mm"
    assert MaskSpec("bbox", radius_mm=5).key() == "bbox-5mm"
    assert MaskSpec("crop", radius_mm=10).key() == "crop-10mm"
    spec = MaskSpec("prior-loss", radius_mm=10, prior_weight=2)
    assert spec.key() == "prior-loss-w2-10mm" and spec.pixel_key() == "prior-loss-10mm"
    assert MaskSpec("loose", radius_mm=10).pixel_key() == MaskSpec("loose", radius_mm=10).key() == "loose-10mm"
    with pytest.raises(LungpriorError, match="prior-weight"):
        MaskSpec("prior-loss", radius_mm=10, prior_weight=-1)
    with pytest.raises(LungpriorError, match="bbox mask needs"):
        prior_weight(_lungs(), MaskSpec("bbox"))
    assert TrainConfig(manifest="m.csv", out="o", mode="crop").mask_spec().radius_mm == 10.0


def test_nolung_is_the_complement_of_tight_or_loose() -> None:
    lungs = _lungs()
    tight = tight_mask(lungs)
    np.testing.assert_array_equal(prior_weight(lungs, MaskSpec("nolung")) > 0.5, ~tight)
    loose = prior_weight(lungs, MaskSpec("loose", radius_px=4)) > 0.5
    np.testing.assert_array_equal(prior_weight(lungs, MaskSpec("nolung", radius_px=4)) > 0.5, ~loose)


def test_bbox_keeps_each_lung_box_and_crop_box_holds_both() -> None:
    lungs = _lungs()
    box = prior_weight(lungs, MaskSpec("bbox", radius_px=2)) > 0.5
    expected = np.zeros_like(lungs)
    expected[18:82, 13:52] = True
    expected[23:87, 68:107] = True
    np.testing.assert_array_equal(box, expected)
    rows, cols = crop_region(lungs, MaskSpec("crop", radius_px=3))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (17, 88, 12, 108)
    assert kept_region(lungs, MaskSpec("crop", radius_px=3)).sum() == 71 * 96
    allowed = penalty_region(lungs, MaskSpec("prior-loss", radius_px=4))
    np.testing.assert_array_equal(allowed, dilate(tight_mask(lungs), 4))
    assert penalty_region(lungs, MaskSpec("loose", radius_px=4)) is None


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    cfg = PhantomConfig(n=60, size=64, seed=6, val_fraction=0.2, test_fraction=0.2)
    generate_benchmark(cfg, out, workers=1, progress=False)
    return out / "manifest.csv"


def _source(bench: Path, k: int = 0) -> ItemSource:
    m = pd.read_csv(bench, dtype={"image_id": str})
    row = m.iloc[k]
    return ItemSource(row["image_id"], str(bench.parent / row["path"]), str(bench.parent / "masks" /
                      f"{row['image_id']}.png"), float(row["pixel_spacing_mm"]))


def test_crop_puts_more_pixels_on_the_lungs_and_crops_the_mask_alike(bench: Path) -> None:
    src = _source(bench)
    _, cov_orig = render_item(src, 64, MaskSpec("original"))
    _, cov_crop = render_item(src, 64, MaskSpec("crop", radius_mm=5))
    assert cov_orig is not None and cov_crop is not None
    assert (cov_crop >= 128).mean() > 1.3 * (cov_orig >= 128).mean()
    assert (cov_crop[:, 0] < 128).all() and (cov_crop[:, -1] < 128).all()  # the margin stays outside the lungs
    img_nolung, cov = render_item(src, 64, MaskSpec("nolung"))
    assert cov is not None and (img_nolung[cov == 255] == 0).all() and img_nolung[cov == 0].any()
    _, _, prior = render_item_with_prior(src, 64, MaskSpec("prior-loss", radius_mm=10))
    assert prior is not None and ((prior >= 128) >= (cov_orig >= 128)).all() and (prior >= 128).sum() > (
        cov_orig >= 128).sum()


def test_prior_region_is_augmented_with_the_image(bench: Path, tmp_path: Path) -> None:
    base = {"manifest": str(bench), "out": str(tmp_path / "r"), "image_size": 48, "cache": str(tmp_path / "c")}
    plain = make_dataset(TrainConfig(**base), "train", train=True, progress=False)
    prior = make_dataset(TrainConfig(**base, mode="prior-loss"), "train", train=True, progress=False)
    x0, y0, i0 = plain[(3, 2)]
    x1, y1, i1, region = prior[(3, 2)]
    assert torch.equal(x0, x1) and torch.equal(y0, y1) and i0 == i1  # same pixels, same augmentation
    unaugmented = torch.from_numpy(prior.prior_region(3))
    assert region.shape == (1, 48, 48) and set(region.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(region[0], unaugmented)  # moved by the affine, as the image was
    assert abs(region.mean().item() - unaugmented.mean().item()) < 0.1


def _toy(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """16 x 16 films: a faint, noisy blob in the centre (the allowed region) and a perfect corner shortcut."""
    y = rng.integers(0, 2, n).astype(np.float32)
    x = rng.normal(0.0, 1.0, (n, 1, 16, 16)).astype(np.float32)
    x[:, 0, 6:10, 6:10] += 0.8 * y[:, None, None]
    x[:, 0, 0:3, 0:3] += 3.0 * (2 * y[:, None, None] - 1)
    return torch.from_numpy(x), torch.from_numpy(y[:, None])


def _fit(weight: float, x: torch.Tensor, y: torch.Tensor, region: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 16 * 16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        idx = slice((step * 32) % len(x), (step * 32) % len(x) + 32)
        logits, grad = input_gradient(model, x[idx], create_graph=weight > 0)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
        if weight > 0:
            loss = loss + weight * outside_share(grad, region[: len(grad)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_penalty_moves_attention_off_an_outside_shortcut() -> None:
    rng = np.random.default_rng(0)
    x, y = _toy(640, rng)
    x_test, y_test = _toy(256, rng)
    region = torch.zeros(len(x), 1, 16, 16)
    region[:, :, 4:12, 4:12] = 1.0
    shares, accuracy_without_shortcut = {}, {}
    for weight in (0.0, 5.0):
        model = _fit(weight, x, y, region)
        _, grad = input_gradient(model, x_test, create_graph=False)
        shares[weight] = outside_share(grad, region[: len(x_test)]).mean().item()
        clean = x_test.clone()
        clean[:, :, 0:3, 0:3] = torch.randn(len(x_test), 1, 3, 3)  # the shortcut no longer says anything
        with torch.no_grad():
            accuracy_without_shortcut[weight] = ((model(clean) > 0).float() == y_test).float().mean().item()
    assert shares[0.0] > 0.5  # unconstrained, most of the gradient energy sits outside the allowed region
    assert shares[5.0] < 0.5 * shares[0.0]
    assert accuracy_without_shortcut[5.0] > accuracy_without_shortcut[0.0] + 0.1


@pytest.mark.parametrize("mode", ["nolung", "bbox", "crop", "prior-loss"])
def test_train_predict_evaluate_each_prior(bench: Path, tmp_path: Path, mode: str) -> None:
    cfg = TrainConfig(manifest=str(bench), out=str(tmp_path / "run"), mode=mode, backbone="resnet10t", image_size=32,
                      epochs=1, batch_size=32, accelerator="cpu", devices="1", radius_px=3.0, prior_weight=1.0)
    result = train(cfg, progress=False)
    assert np.isfinite(result.best_val_auroc)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 1
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["mode"] == mode and stored["prior_weight"] == 1.0
    preds = predict_split(tmp_path / "run", "test")
    assert np.isfinite(preds[[c for c in preds.columns if c.startswith("p_")]].to_numpy()).all()
    metrics = evaluate_run(tmp_path / "run", n_resamples=20, max_cam=2, progress=False)
    assert set(metrics["attention"]["per_class"]) == set(FINDINGS)  # Grad-CAM ran on the prior's own inputs
    if mode == "prior-loss":
        logged = pd.read_csv(next((tmp_path / "run" / "csv").rglob("metrics.csv")))
        share = logged["train_outside_share"].dropna()
        assert len(share) == 1 and 0.0 <= share.iloc[0] <= 1.0


def test_penalty_gradients_through_global_batchnorm_match_batchnorm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DDP's all-reduce BatchNorm (forced, 1-process gloo group) supports the penalty's double backward."""
    import torch.distributed as dist

    from lungprior.classify import syncbn
    from lungprior.classify.syncbn import BatchNormSync

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 12 * 12, 3))

    ref, synced = net(), net()
    BatchNormSync(cuda=False).apply(synced)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 12, 12, generator=gen)
    region = (torch.rand(6, 1, 12, 12, generator=gen) > 0.5).float()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(syncbn, "_world_size", lambda: 2)  # take the distributed path
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for model in (ref, synced):
                _, grad = input_gradient(model, x)
                outside_share(grad, region).mean().backward()
    finally:
        dist.destroy_process_group()
    # the second-order pass runs through the all-reduce's own autograd (summed over processes), not around it
    assert not [w for w in caught if "autograd kernel was not registered" in str(w.message)]
    for (name, a), b in zip(synced.named_parameters(), ref.parameters(), strict=True):
        assert b.grad is not None and b.grad.abs().max() > 0
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_priors_config_lists_every_prior() -> None:
    from lungprior.experiment import load_experiment
    from lungprior.masks import MODES

    cfg = load_experiment(Path(__file__).resolve().parents[1] / "configs" / "priors.yaml")
    assert {m.mode for m in cfg.masks} == set(MODES)
    assert cfg.dataset.phantom.context == 0.5 and len(cfg.training.seeds) >= 3
    loss = next(m for m in cfg.masks if m.mode == "prior-loss")
    assert loss.spec().key() == "prior-loss-w1-10mm"


def test_cli_refuses_bad_prior_settings_in_one_line(bench: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lungprior.cli.main import app

    result = CliRunner().invoke(app, ["train", "--manifest", str(bench), "--out", str(tmp_path / "r"),
                                      "--mode", "prior-loss", "--prior-weight", "-1"])
    assert result.exit_code == 2 and "--prior-weight must be >= 0" in result.output
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "p"), "--context", "2"])
    assert result.exit_code == 2 and "--context must be in [0, 1]" in result.output


def test_crop_runs_crop_the_lesion_masks_for_the_pointing_game(bench: Path, tmp_path: Path) -> None:
    from PIL import Image

    from lungprior.evaluate.cam import crop_boxes, lesion_mask

    frame = pd.read_csv(bench, dtype={"image_id": str})
    lesions = bench.parent / "lesions"
    image_id = next(i for i in frame["image_id"] if np.asarray(Image.open(lesions / f"{i}.png")).any())
    bits = np.asarray(Image.open(lesions / f"{image_id}.png"))
    finding = FINDINGS[int(np.log2(int(bits.max()) & -int(bits.max())))]  # the lowest bit set somewhere
    cfg = TrainConfig(manifest=str(bench), out=str(tmp_path / "r"), mode="crop", radius_mm=5).resolved()
    crop = crop_boxes(cfg, frame)
    assert crop is not None and crop_boxes(TrainConfig(manifest=str(bench), out="o").resolved(), frame) is None
    box = crop(image_id, bits.shape)
    src = _source(bench, int(np.flatnonzero(frame["image_id"] == image_id)[0]))
    _, coverage = render_item(src, 32, MaskSpec("crop", radius_mm=5))
    lungs = tight_mask(np.asarray(Image.open(bench.parent / "masks" / f"{image_id}.png")) >= 128)
    assert (lungs[box].sum() == lungs.sum()) and box[0].stop - box[0].start < bits.shape[0]  # a real crop
    cropped = lesion_mask(lesions, image_id, finding, 32, crop)
    whole = lesion_mask(lesions, image_id, finding, 32)
    assert cropped is not None and whole is not None and cropped.sum() > whole.sum()  # magnified like the image
    assert coverage is not None and (coverage >= 128).sum() > 0
