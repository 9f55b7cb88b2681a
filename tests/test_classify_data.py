"""Classification inputs: config, masked-image cache, dataset, backbones and weight files (no training)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

from lungprior.classify import TrainConfig, create_backbone, load_weights_file, make_dataset, prepare
from lungprior.classify.backbone import check_backbone, normalisation
from lungprior.classify.data import pos_weight
from lungprior.classify.module import macro_auroc, per_finding_auroc, unique_items
from lungprior.data.io import read_image
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import LungpriorError

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    generate_benchmark(PhantomConfig(n=40, size=64, seed=3), out, workers=1, progress=False)
    return out / "manifest.csv"


def _cfg(manifest: Path, tmp_path: Path, **kw: object) -> TrainConfig:
    base = {"manifest": str(manifest), "out": str(tmp_path / "run"), "backbone": "resnet18", "image_size": SIZE}
    base["cache"] = str(tmp_path / "cache")
    return TrainConfig(**{**base, **kw})


# --- config ---------------------------------------------------------------------------------------------


def test_config_json_round_trip(tmp_path: Path) -> None:
    cfg = TrainConfig(manifest="m.csv", out="r", mode="loose", radius_px=3.5, hull=True, devices=2, limit_train=7)
    assert cfg.devices == "2"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "c.json").write_text(__import__("json").dumps(cfg.to_dict()))
    assert TrainConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(LungpriorError, match="unknown training setting"):
        TrainConfig.from_dict({**cfg.to_dict(), "colour": "red"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "wide", "unknown --mode 'wide'"),
        ("fill", "grey", "unknown fill"),
        ("devices", "two", "--devices"),
        ("precision", "64", "unknown --precision"),
        ("strategy", "fsdp", "unknown --strategy"),
        ("image_size", 8, "--image-size"),
        ("limit_train", 0, "--limit-train"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(LungpriorError, match=message):
        TrainConfig(manifest="m.csv", out="r", **{field: value})


def test_resolved_fills_defaults(bench: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(manifest=str(bench), out="run", mode="loose").resolved()
    assert cfg.masks == str(bench.parent / "masks")
    assert cfg.cache == str(bench.parent / ".lungprior-cache")
    assert cfg.radius_mm == 10.0 and Path(cfg.out).is_absolute()
    assert cfg.mask_spec().key() == "loose-10mm"


# --- cache and dataset --------------------------------------------------------------------------------


def test_masking_happens_in_the_cache(bench: Path, tmp_path: Path) -> None:
    views = {m: make_dataset(_cfg(bench, tmp_path, mode=m, radius_px=4), "test", progress=False) for m in
             ("original", "tight", "loose", "soft")}
    n = len(views["tight"])
    assert n > 0 and all(len(v) == n for v in views.values())
    kept = {m: 0 for m in views}
    for i in range(n):
        cover = views["tight"].lung_coverage(i)
        tight, loose, orig = (views[m].raw_image(i) for m in ("tight", "loose", "original"))
        assert tight.shape == (SIZE, SIZE) and tight.dtype == np.uint8
        assert cover.max() == 1.0 and (cover == 0).any()
        assert not tight[cover == 0].any(), "tight image must be zero outside the resized lung mask"
        inside = cover == 1.0  # fully lung: masking changes nothing (up to one grey level of rounding)
        assert inside.sum() > 20
        assert np.abs(tight[inside].astype(int) - orig[inside]).max() <= 1
        assert np.abs(loose[inside].astype(int) - orig[inside]).max() <= 1
        assert np.array_equal(views["tight"].lung_mask(i), cover >= 0.5)
        for m, img in (("tight", tight), ("loose", loose), ("original", orig)):
            kept[m] += int((img > 0).sum())
        far = (loose == 0) & (orig > 0)  # over 4 px (at 64 px) from the lungs: soft keeps alpha of the film
        soft = views["soft"].raw_image(i).astype(float)
        assert far.any() and np.abs(soft[far] - 0.3 * orig[far]).max() <= 1.0
    assert kept["tight"] < kept["loose"] < kept["original"]
    raw, _ = read_image(bench.parent / views["original"].frame["path"].iloc[0])
    plain = np.asarray(Image.fromarray(raw).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    assert np.abs(views["original"].raw_image(0).astype(int) - np.rint(plain * 255)).max() <= 1  # keeps all


def test_items_are_normalised_tensors(bench: Path, tmp_path: Path) -> None:
    cfg = _cfg(bench, tmp_path, mode="tight")
    ds = make_dataset(cfg, "train", train=False, progress=False)
    x, y, index = ds[1]
    mean, std = normalisation("resnet18")
    assert x.shape == (1, SIZE, SIZE) and x.dtype == torch.float32
    assert y.shape == (5,) and index == 1
    assert torch.allclose(x[0] * std + mean, torch.from_numpy(ds.raw_image(1) / 255.0).float(), atol=1e-6)
    assert torch.equal(y, torch.tensor(ds.frame.loc[1, ["Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis"]]
                                       .to_numpy(dtype=np.float32)))
    limited = make_dataset(replace(cfg, limit_train=5), "train", progress=False)
    assert len(limited) == 5 and set(limited.image_ids) <= set(ds.image_ids)
    assert len(make_dataset(replace(cfg, limit_train=5), "val", progress=False)) == len(
        make_dataset(cfg, "val", progress=False)
    )


def test_cache_reused_not_rebuilt(bench: Path, tmp_path: Path) -> None:
    cfg = _cfg(bench, tmp_path, mode="tight")
    first = prepare(cfg, progress=False).cache
    stamp = (first.path / "done").stat().st_mtime_ns
    second = prepare(cfg, progress=False).cache
    assert first.built and not second.built and second.path == first.path
    assert (second.path / "done").stat().st_mtime_ns == stamp
    assert {p.name for p in first.path.iterdir()} >= {"images.npy", "masks.npy", "index.csv", "done"}


def test_cache_key_follows_what_changes_pixels(bench: Path, tmp_path: Path) -> None:
    key = {r: prepare(_cfg(bench, tmp_path, mode="loose", radius_mm=r), progress=False).cache.key for r in (10, 20)}
    assert key[10] != key[20]
    tight = prepare(_cfg(bench, tmp_path, mode="tight"), progress=False).cache.key
    assert tight not in key.values()
    mask = bench.parent / "masks" / "phantom_00000.png"
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert prepare(_cfg(bench, tmp_path, mode="tight"), progress=False).cache.key != tight
    finally:
        os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_half_written_cache_is_rebuilt(bench: Path, tmp_path: Path) -> None:
    cfg = _cfg(bench, tmp_path, mode="tight")
    info = prepare(cfg, progress=False).cache
    good = np.load(info.images_path).copy()
    np.lib.format.open_memmap(info.images_path, mode="r+")[:] = 0  # as if killed mid-build...
    (info.path / "done").unlink()  # ...before the done marker
    (info.path.parent / f"{info.key}.partial").mkdir()  # and a leftover partial build
    again = prepare(cfg, progress=False).cache
    assert again.built and np.array_equal(np.load(again.images_path), good)
    assert not (info.path.parent / f"{info.key}.partial").exists()


def test_missing_mask_leaves_the_film_out_naming_it(bench: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(bench.parent / "masks", masks)
    (masks / "phantom_00007.png").unlink()
    prep = prepare(_cfg(bench, tmp_path, mode="tight", masks=str(masks)), progress=False)
    assert prep.excluded["image_id"].tolist() == ["phantom_00007"]
    assert prep.excluded["reason"].iloc[0] == f"lung mask not found, expected {masks / 'phantom_00007.png'}"
    assert "phantom_00007" not in set(prep.frame["image_id"])
    with pytest.raises(LungpriorError, match="needs lung masks"):
        prepare(_cfg(_moved_manifest(bench, tmp_path), tmp_path, mode="tight"), progress=False)


def test_missing_image_names_it(bench: Path, tmp_path: Path) -> None:
    import pandas as pd

    df = pd.read_csv(bench, dtype={"image_id": str, "patient_id": str})
    df["path"] = [str(bench.parent / p) for p in df["path"]]
    df.loc[3, "path"] = str(tmp_path / "gone.png")
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(LungpriorError, match=r"image phantom_00003: image .*gone\.png: file not found"):
        prepare(_cfg(tmp_path / "m.csv", tmp_path, masks=str(bench.parent / "masks")), progress=False)


def _moved_manifest(bench: Path, tmp_path: Path) -> Path:
    """The manifest copied to a folder without masks/ (absolute image paths)."""
    import pandas as pd

    df = pd.read_csv(bench, dtype={"image_id": str, "patient_id": str})
    df["path"] = [str(bench.parent / p) for p in df["path"]]
    out = tmp_path / "elsewhere" / "manifest.csv"
    out.parent.mkdir()
    df.to_csv(out, index=False)
    return out


# --- metrics --------------------------------------------------------------------------------------------


def test_val_auroc_ignores_padded_duplicates() -> None:
    labels = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=float)
    probs = np.array([[0.9, 0.2, 0.1, 0.1, 0.1], [0.4, 0.8, 0.1, 0.1, 0.1], [0.3, 0.3, 0.1, 0.1, 0.7],
                      [0.1, 0.1, 0.1, 0.1, 0.2]])
    whole = per_finding_auroc(labels, probs)
    # two ranks, the sampler padded rank 1 by repeating item 0 (a positive Mass scored 0.9)
    index = np.array([0, 2, 1, 3, 0])
    gathered = unique_items(labels[index], probs[index], index)
    np.testing.assert_equal(list(per_finding_auroc(*gathered).values()), list(whole.values()))
    assert whole["Mass"] == 0.75 and np.isnan(whole["Pneumonia"])
    assert macro_auroc(whole) == pytest.approx(np.mean([0.75, 1.0, 1.0]))


def test_pos_weight_is_negatives_over_positives(bench: Path, tmp_path: Path) -> None:
    ds = make_dataset(_cfg(bench, tmp_path, mode="original"), "train", progress=False)
    pos = ds.labels.sum(axis=0)
    expected = np.where(pos > 0, (len(ds) - pos) / np.maximum(pos, 1), 1.0)
    assert np.allclose(pos_weight(ds).numpy(), expected)


# --- backbones and weights ------------------------------------------------------------------------------


def test_unknown_backbone_lists_close_matches() -> None:
    with pytest.raises(LungpriorError, match=r"unknown backbone 'resnet5O'.*resnet50"):
        check_backbone("resnet5O")
    check_backbone("densenet121")


def test_pretrained_path_from_torchvision_resnet(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "tv.pth"
    torch.save({"module." + k: v for k, v in tv.state_dict().items()}, path)  # DataParallel-style names
    model, report = create_backbone("resnet18", str(path))
    assert report is not None and report.adapted == ["conv1.weight"]
    assert set(report.dropped_classifier) == {"fc.weight", "fc.bias"}
    assert not report.missing and not report.unexpected and not report.shape_mismatch
    sd = model.state_dict()
    assert torch.allclose(sd["conv1.weight"], tv.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(sd["layer3.1.bn2.running_var"], tv.layer3[1].bn2.running_var)
    assert sd["fc.weight"].shape == (5, 512)


def test_pretrained_path_densenet_old_names_and_timm_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    tv = torchvision.models.densenet121()
    old = {k.replace("denselayer1.norm1.", "denselayer1.norm.1."): v for k, v in tv.state_dict().items()}
    torch.save({"state_dict": old}, tmp_path / "dn.pth")
    model, report = create_backbone("densenet121", str(tmp_path / "dn.pth"))
    assert report is not None and report.adapted == ["features.conv0.weight"] and not report.missing
    w = model.state_dict()["features.denseblock1.denselayer1.norm1.weight"]
    assert torch.equal(w, tv.features.denseblock1.denselayer1.norm1.weight)
    src = timm.create_model("resnet18", num_classes=1000)  # a timm 3-channel file loads the same way
    torch.save(src.state_dict(), tmp_path / "timm.pth")
    _, rep = create_backbone("resnet18", str(tmp_path / "timm.pth"))
    assert rep is not None and rep.loaded == len(src.state_dict()) - 2


def test_pretrained_file_matching_nothing_is_an_error(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    model = timm.create_model("resnet18", num_classes=5, in_chans=1)
    with pytest.raises(LungpriorError, match=r"no tensor matches.*encoder\.weight"):
        load_weights_file(model, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(LungpriorError, match=r"junk\.pth: cannot read --pretrained file: corrupt or truncated .*; use"):
        load_weights_file(model, tmp_path / "junk.pth")
    with pytest.raises(LungpriorError, match="file not found"):
        create_backbone("resnet18", str(tmp_path / "missing.pth"))


def test_imagenet_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(LungpriorError, match=r"not in the local cache.*--pretrained PATH") as err:
        create_backbone("resnet18", "imagenet")
    assert "\n" not in str(err.value)
