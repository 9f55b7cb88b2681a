"""The ONNX Runtime engine (export cached by weights hash, parity with eager PyTorch), the whole-box baseline
and the default segmentation of a real adult PA film."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lungprior.data.io import read_image, read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.segment import create_backend
from lungprior.segment.infer import Cascade, OnnxEngine, TorchEngine, cached_onnx, create_engine, weights_digest
from lungprior.segment.overlap import dice

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    generate_benchmark(PhantomConfig(n=2, size=256, seed=5), root / "bench", workers=1, progress=False)
    films = [(read_image(root / "bench" / "images" / f"phantom_0000{k}.png")[0],
              read_mask(root / "bench" / "masks" / f"phantom_0000{k}.png")) for k in range(2)]
    backend = create_backend("litemedsam")
    return root / "cache", backend, films


def test_onnx_matches_torch_and_is_cached(setup) -> None:
    cache, backend, films = setup
    image = films[0][0]
    onnx = create_engine(backend, "auto", cache_dir=cache)  # auto = onnx on the CPU
    assert isinstance(onnx, OnnxEngine) and onnx.encoder_path.parent.parent == cache
    assert onnx.encoder_path.parent.name.startswith(f"litemedsam-{weights_digest(backend.model)[:20]}")
    stamp = onnx.encoder_path.stat().st_mtime_ns
    assert cached_onnx(backend, cache) == (onnx.encoder_path, onnx.decoder_path)
    assert onnx.encoder_path.stat().st_mtime_ns == stamp  # reused, not exported again

    eager = TorchEngine(backend)
    x, transform = backend.preprocess(image)
    e_torch, e_onnx = eager.encode(x[None]), onnx.encode(x[None])
    assert e_onnx.shape == e_torch.shape == (1, 256, 64, 64)
    assert float((e_onnx - e_torch).abs().max()) <= 1e-4

    for k in (1, 3):  # the decoder graph takes any number of boxes
        boxes = np.array([[20.0, 30.0, 120.0, 220.0], [136.0, 30.0, 236.0, 220.0], [0.0, 0.0, 255.0, 255.0]])[:k]
        (l_torch, i_torch), (l_onnx, i_onnx) = eager.decode(e_torch, boxes), onnx.decode(e_torch, boxes)
        assert l_onnx.shape == l_torch.shape == (k, 1, 256, 256)
        assert float((l_onnx - l_torch).abs().max()) <= 1e-3
        assert i_onnx.shape == i_torch.shape == (k, 1)  # the IoU head, which QC reads
        assert float((i_onnx - i_torch).abs().max()) <= 1e-4

    auto_torch = Cascade(eager, backend).auto(e_torch, transform)
    auto_onnx = Cascade(onnx, backend).auto(e_onnx, transform)
    assert auto_onnx.prompt_source == auto_torch.prompt_source == "auto"
    assert np.array_equal(auto_onnx.mask, auto_torch.mask) and 0.1 < auto_onnx.mask.mean() < 0.5
    assert 0.0 < auto_torch.pred_iou <= 1.0 and abs(auto_onnx.pred_iou - auto_torch.pred_iou) <= 1e-4


def test_one_whole_image_box_is_worse_than_auto_prompts(setup) -> None:
    cache, backend, films = setup
    engine = create_engine(backend, "onnx", cache_dir=cache)
    cascade = Cascade(engine, backend)
    for image, gt in films:
        x, transform = backend.preprocess(image)
        embedding = engine.encode(x[None])
        auto, whole = cascade.auto(embedding, transform), cascade.whole(embedding, transform)
        assert whole.prompt_source == "whole" and whole.boxes.tolist() == [[0, 0, 255, 255]]
        assert dice(auto.mask, gt) >= 0.85 and dice(whole.mask, gt) < dice(auto.mask, gt) - 0.1
        assert auto.boxes.shape == (2, 4) and auto.boxes[0, 2] < 128 < auto.boxes[1, 0]


def test_weights_digest_follows_the_weights() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = weights_digest(net)
    assert before == weights_digest(net) and len(before) == 64
    with torch.no_grad():
        net[0].weight[0, 0] += 1e-3
    assert weights_digest(net) != before


def test_default_segmentation_of_a_real_adult_pa_film(setup) -> None:
    """RG1_UNCI.dcm (pydicom-data): two plausible lungs, not the mediastinum or the whole thorax."""
    from pydicom.data import get_testdata_file

    from lungprior.segment.infer import qc_row

    cache, backend, _ = setup
    path = get_testdata_file("RG1_UNCI.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    image, _ = read_image(path)
    engine = create_engine(backend, "auto", cache_dir=cache)
    x, transform = backend.preprocess(image)
    pred = Cascade(engine, backend).auto(engine.encode(x[None]), transform)
    row = qc_row("RG1_UNCI", pred.mask, pred.prob, pred.prompt_source)
    assert (row["flag"], row["prompt_source"], row["n_components"]) == ("ok", "auto", 2)
    assert 0.2 < row["area_fraction"] < 0.4 and row["lr_area_ratio"] > 0.7
    w = image.shape[1]
    assert pred.boxes[0, 2] < w / 2 < pred.boxes[1, 0]  # one box per lung, apart at the mediastinum
    assert not pred.mask[300:1400, int(0.47 * w) : int(0.53 * w)].any()  # trachea / mediastinum excluded
    assert image[pred.mask].mean() < image[~pred.mask].mean() - 0.15  # lungs are the dark fields
