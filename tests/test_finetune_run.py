"""Fine-tuning runs on a tiny synthetic benchmark: run folder, best.pth, resume, overfit check, MedSAM, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError
from lungprior.segment import (
    LITEMEDSAM_SHA256,
    LiteMedSAMBackend,
    MedSAMBackend,
    build_litemedsam_network,
    build_medsam_network,
    create_backend,
)
from lungprior.segment.finetune import (
    RECIPES,
    EmbeddingCache,
    FinetuneConfig,
    LungFinetuneModule,
    LungPromptDataset,
    collate,
    evaluate_segmentation,
    finetune,
    load_pairs,
)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """12 films of 64 x 64: 9 train, 1 val, 2 test."""
    folder = tmp_path_factory.mktemp("phantom")
    generate_benchmark(PhantomConfig(n=12, size=64, seed=1), folder, workers=1, progress=False)
    return folder


def tiny_config(phantom, out) -> FinetuneConfig:
    return FinetuneConfig(data=str(phantom), out=str(out), epochs=1, views=2, batch_size=2, max_train=2,
                          accelerator="cpu")


@pytest.fixture(scope="module")
def run(phantom, tmp_path_factory):
    cfg = tiny_config(phantom, tmp_path_factory.mktemp("runs") / "lite")
    return cfg, finetune(cfg)


def test_run_folder_best_checkpoint_and_test_comparison(phantom, run) -> None:
    cfg, result = run
    out = result.out
    for name in ("config.json", "zeroshot.json", "metrics.csv", "best.pth", "best.json", "test_metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "last.ckpt").is_file()
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_dice,val_iou,val_hd95,seconds" and len(lines) == 2
    epoch, loss, dice, iou, hd95, seconds = (float(v) for v in lines[1].split(","))
    assert epoch == 1 and loss > 0 and 0.5 < dice <= 1 and 0.3 < iou <= dice and hd95 >= 0 and seconds > 0

    best = json.loads((out / "best.json").read_text())
    assert best["backend"] == "litemedsam" and best["base_weights_sha256"] == LITEMEDSAM_SHA256
    assert best["epoch"] == 1 and best["metrics"]["val_dice"] == pytest.approx(dice)
    assert best["config"] == cfg.to_dict() and best["freeze_encoder"] is True and best["lungprior_version"]
    assert (best["epochs"], best["views"]) == (1, 2)
    zero = json.loads((out / "zeroshot.json").read_text())
    assert [len(load_pairs(phantom, s)) for s in ("train", "val", "test")] == [9, 1, 2]
    assert zero["split"] == "val" and zero["n"] == 1 and 0 < zero["dice"] <= 1
    test = json.loads((out / "test_metrics.json").read_text())
    assert test["zero_shot"]["n"] == test["finetuned"]["n"] == 2
    assert result.best_epoch == 1 and result.test["finetuned"]["dice"] == test["finetuned"]["dice"]

    embeddings = sorted((out / "cache").glob("*.npy"))
    assert len(embeddings) == 7  # 2 train (--max-train 2) x 2 views + 1 val + 2 test images, each encoded once
    stored = np.load(embeddings[0])
    assert stored.dtype == np.float16 and stored.shape == (256, 64, 64)

    tuned = create_backend("litemedsam", checkpoint=out / "best.pth")
    base = create_backend("litemedsam")
    tuned_sd, base_sd = tuned.model.state_dict(), base.model.state_dict()
    assert all(torch.equal(tuned_sd[k], v) for k, v in base_sd.items() if k.startswith("image_encoder."))
    assert any(not torch.equal(tuned_sd[k], v) for k, v in base_sd.items() if k.startswith("mask_decoder."))
    again = evaluate_segmentation(tuned, load_pairs(phantom, "test"), cache=EmbeddingCache(out / "cache", tuned))
    assert again["dice"] == pytest.approx(test["finetuned"]["dice"], abs=1e-6)


def test_rerun_is_not_retrained_and_another_config_is_refused(run, tmp_path) -> None:
    cfg, _ = run
    out = run[1].out
    stamps = {n: (out / n).stat().st_mtime_ns for n in ("metrics.csv", "best.pth", "test_metrics.json")}
    again = finetune(cfg)
    assert again.already_finished and again.best_epoch == 1
    assert stamps == {n: (out / n).stat().st_mtime_ns for n in stamps}
    with pytest.raises(
        LungpriorError, match=r"holds a fine-tuning run made with other settings \(epochs: 1 -> 2\); use a new --out"
    ):
        finetune(replace(cfg, epochs=2))
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(LungpriorError, match=r"not empty and holds no fine-tuning run \(no config\.json\)"):
        finetune(replace(cfg, out=str(tmp_path)))


def test_a_run_stopped_before_its_test_split_resumes_from_last_ckpt(run) -> None:
    """last.ckpt (with the one-cycle schedule's state) loads with weights_only; the rerun trains no further."""
    cfg, result = run
    out = result.out
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["lr_schedulers"][0]["total_steps"] >= 2 and state["callbacks"]
    metrics = (out / "metrics.csv").read_text()
    before = (out / "test_metrics.json").read_text()
    (out / "test_metrics.json").unlink()
    again = finetune(cfg)
    assert not again.already_finished and (out / "metrics.csv").read_text() == metrics
    assert json.loads((out / "test_metrics.json").read_text()) == json.loads(before)


def test_decoder_overfits_one_batch(phantom, run) -> None:
    """A few optimizer steps on one batch (fixed jitter) lower the loss; batched decoding equals per-image."""
    out = run[1].out
    backend = create_backend("litemedsam")
    cache = EmbeddingCache(out / "cache", backend)
    data = LungPromptDataset(load_pairs(phantom, "train")[:1], backend, cache)
    batch = collate([data[0]])
    module = LungFinetuneModule(backend, replace(RECIPES["litemedsam"], lr=2e-4), freeze_encoder=True)
    boxes, _, _ = module.prompts(batch, epoch=0)
    with torch.no_grad():
        batched, _ = module.decode_prompts(batch["embedding"], boxes)
        module.batched_decoder = False  # SAM's decoder path: one call per image
        single, _ = module.decode_prompts(batch["embedding"], boxes)
        module.batched_decoder = True
    assert batched.shape == (2, 1, 256, 256) and torch.allclose(batched, single, atol=1e-3)
    module.net.train()
    optimizer = module.configure_optimizers()["optimizer"]
    for group in optimizer.param_groups:
        group["lr"] = 2e-4  # the one-cycle schedule would start at lr / 25
    losses = []
    for _ in range(4):
        loss = module.compute_loss(batch, epoch=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_prior_prompts_swap_a_fraction_of_views_to_the_cascade_prior_boxes(phantom) -> None:
    """With prior_prompts a view's two lungs are prompted with the coarse pass's hemithorax boxes, same targets."""
    from lungprior.segment.finetune.data import jitter_boxes, jitter_rng, prior_draw, read_pair
    from lungprior.segment.infer.prompts import prior_boxes

    backend = create_backend("litemedsam")
    pairs = load_pairs(phantom, "train")[:4]
    data = LungPromptDataset(pairs, backend, views=2)
    batch = collate([data[i] for i in range(len(data))])
    assert batch["prior_ok"].all()  # every phantom view keeps both lungs
    image, mask, _ = read_pair(pairs[1])
    _, transform = backend.preprocess(image)
    expected = transform.boxes_to_input(prior_boxes(mask.shape))
    assert np.allclose(batch["prior"][2].numpy(), expected, atol=1e-4)  # item 2 = view 0 of the second film
    assert expected[0, 0] < expected[1, 0]  # image-left box first, like the lungs

    own = LungFinetuneModule(backend, RECIPES["litemedsam"], freeze_encoder=True)
    always = LungFinetuneModule(backend, RECIPES["litemedsam"], freeze_encoder=True, prior_prompts=1.0)
    boxes, targets, _ = own.prompts(batch, epoch=3)
    swapped, same_targets, _ = always.prompts(batch, epoch=3)
    assert torch.equal(targets, same_targets)
    for i in range(len(data)):
        jittered = jitter_boxes(batch["boxes"][i].numpy(), 0.04, 0.10, 256, jitter_rng(0, 3, i))
        assert np.allclose(boxes[i].numpy(), jittered) and torch.equal(swapped[i], batch["prior"][i])
    assert own.prompts(batch, epoch=None)[0][0].equal(always.prompts(batch, epoch=None)[0][0])  # validation: own
    draws = np.array([[prior_draw(0, epoch, i) for i in range(40)] for epoch in range(25)])
    assert 0.20 < (draws < 0.25).mean() < 0.30 and draws[0, 0] == prior_draw(0, 0, 0)


def test_optimizers_follow_each_recipe() -> None:
    """MedSAM: prompt encoder frozen, image encoder + decoder trained; LiteMedSAM: everything trained.

    The ViT-B network is built on the meta device (real architecture, no memory, no slow random init).
    """
    with torch.device("meta"):
        sam = build_medsam_network()
    lite = build_litemedsam_network()
    medsam = MedSAMBackend(sam, torch.device("meta"))

    def ids(*parts: torch.nn.Module) -> set[int]:
        return {id(p) for part in parts for p in part.parameters()}

    for freeze in (False, True):
        module = LungFinetuneModule(medsam, RECIPES["medsam"], freeze_encoder=freeze, total_steps=10)
        config = module.configure_optimizers()
        optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
        assert isinstance(optimizer, torch.optim.AdamW) and isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
        assert config["lr_scheduler"]["interval"] == "step" and scheduler.total_steps == 10
        groups = optimizer.param_groups
        assert {id(p) for p in groups[0]["params"]} == ids(sam.mask_decoder)
        assert groups[0]["max_lr"] == 1e-4 and groups[0]["weight_decay"] == 0.01
        if freeze:
            assert len(groups) == 1
        else:  # the full recipe: the encoder learns at 0.1 x the learning rate
            assert {id(p) for p in groups[1]["params"]} == ids(sam.image_encoder)
            assert groups[1]["max_lr"] == pytest.approx(1e-5)
        assert not any(p.requires_grad for p in sam.prompt_encoder.parameters())
    module = LungFinetuneModule(LiteMedSAMBackend(lite, torch.device("cpu")), RECIPES["litemedsam"],
                                freeze_encoder=False)
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert {id(p) for p in groups[0]["params"]} == ids(lite.prompt_encoder, lite.mask_decoder)
    assert groups[0]["max_lr"] == 2e-4 and {id(p) for p in groups[1]["params"]} == ids(lite.image_encoder)


def test_medsam_needs_a_checkpoint(phantom, tmp_path) -> None:
    cfg = replace(tiny_config(phantom, tmp_path / "m"), backend="medsam")
    with pytest.raises(LungpriorError, match="--backend medsam needs --checkpoint"):
        finetune(cfg)


def test_cli_reports_the_finished_run_and_rejects_a_bad_backend(phantom, run, tmp_path) -> None:
    cfg, result = run
    args = ["finetune", "--data", cfg.data, "--out", cfg.out, "--epochs", "1", "--views", "2", "--batch-size", "2",
            "--max-train", "2", "--accelerator", "cpu"]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "already finished" in ok.stdout and "fine-tuned" in ok.stdout
    assert f"{result.test['finetuned']['dice']:.4f}" in ok.stdout
    bad = CliRunner().invoke(app, ["finetune", "--data", cfg.data, "--out", str(tmp_path / "x"), "--backend", "sam2"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --backend 'sam2': choose one of litemedsam, medsam"
