"""Run-folder JSON and ONNX files as untrusted input: schema-checked, one line naming the key, nothing half-written."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lungprior.classify.backbone import create_backbone
from lungprior.classify.config import TrainConfig
from lungprior.classify.export import export_run
from lungprior.classify.segsource import read_segmentation_record
from lungprior.errors import LungpriorError
from lungprior.layout import SEGMENTATION
from lungprior.predict.classifier import OnnxClassifier


def _strict_json(path: Path) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A finished run folder (config.json, model.pt) without training: a small untrained backbone."""
    folder = tmp_path / "run"
    folder.mkdir()
    cfg = TrainConfig(manifest=str(tmp_path / "manifest.csv"), out=str(folder), mode="original",
                      backbone="resnet10t", image_size=32, epochs=1)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    model, _ = create_backbone("resnet10t", "none", 32)
    torch.save(model.state_dict(), folder / "model.pt")
    return folder


@pytest.mark.parametrize("metrics, key", [
    ('{"macro_auroc": "high"}', "macro_auroc"),
    ('{"per_class": {"Effusion": {"auroc": [1]}}}', "per_class.Effusion.auroc"),
    ('{"macro_auroc": NaN}', "macro_auroc: Input should be a finite number"),
    ('{"per_class": {"Effusion": {"auroc": {"estimate": Infinity}}}}',
     "per_class.Effusion.auroc.estimate: Input should be a finite"),
    ('{"n_images": 1.5}', "n_images"),
    ("[1, 2", "not valid JSON"),
    ("[]", "(top level)"),
])
def test_malformed_metrics_leave_no_model_behind(run: Path, tmp_path: Path, metrics: str, key: str) -> None:
    (run / "metrics.json").write_text(metrics)
    with pytest.raises(LungpriorError, match=r"metrics\.json") as info:
        export_run(run, tmp_path / "out")
    assert key in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out" / "classifier.onnx").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_model_card_never_holds_nan(run: Path, tmp_path: Path) -> None:
    (run / "calibration.json").write_text('{"method": "platt", "params": {"Effusion": {"a": NaN, "b": 0}}}')
    with pytest.raises(LungpriorError, match=r"calibration\.params\.Effusion\.a"):
        export_run(run, tmp_path / "bad")
    assert not (tmp_path / "bad" / "classifier.onnx").exists()
    (run / "calibration.json").unlink()
    ci = {"estimate": 0.7, "low": 0.6, "high": 0.8, "n_used": 200, "n_skipped": 0}
    undefined = {"estimate": None, "low": None, "high": None}
    metrics = {"n_images": 40, "n_patients": 30, "bootstrap": {"n_resamples": 200, "alpha": 0.05, "unit": "patient"},
               "per_class": {"Effusion": {"auroc": ci, "auprc": ci, "n_positive": 5},
                             "Nodule": {"auroc": undefined, "auprc": undefined}},
               "macro_auroc": ci, "no_finding": {"auroc": ci}, "calibration": {"raw": {"ece": float("nan")}}}
    (run / "metrics.json").write_text(json.dumps(metrics))  # as `evaluate` writes it; NaN where the card never looks
    result = export_run(run, tmp_path / "ok")
    card = _strict_json(result.card)
    assert card["metrics"]["macro_auroc"] == ci and result.onnx.is_file()
    assert card["metrics"]["per_class"]["Nodule"]["auroc"] == undefined


def _onnx(path: Path, outputs: int = 5, value: float | None = None) -> Path:
    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = torch.sigmoid(x.mean(dim=(1, 2, 3)))[:, None].repeat(1, outputs)
            return p * 0 + value if value is not None else p

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net(), (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"],
                          output_names=["probabilities"], dynamic_axes={"image": {0: "b"}}, dynamo=False)
    return path


def test_bad_onnx_models_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(LungpriorError, match="not found"):
        OnnxClassifier(tmp_path / "clasifier.onnx")  # a typo
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(LungpriorError, match="not a loadable"):
        OnnxClassifier(tmp_path / "corrupt.onnx")
    with pytest.raises(LungpriorError, match=r"shape \(B, 5\)"):
        OnnxClassifier(_onnx(tmp_path / "three.onnx", outputs=3))
    x = np.zeros((2, 1, 8, 8), np.float32)
    assert OnnxClassifier(_onnx(tmp_path / "ok.onnx")).probabilities(x).shape == (2, 5)
    for k, value in enumerate([float("nan"), 2.0, -1.0]):
        model = OnnxClassifier(_onnx(tmp_path / f"v{k}.onnx", value=value))
        with pytest.raises(LungpriorError, match="nothing scored"):
            model.probabilities(x)


@pytest.mark.parametrize("record, key", [
    ({"source": "model", "auto": {"treshold": 0.5}}, "auto.treshold"),
    ({"source": "model", "auto": {"threshold": "0.5"}}, "auto.threshold"),
    ({"source": "model", "auto": {"refine_steps": 1.5}}, "auto.refine_steps"),
    ({"source": "model", "prompt": 3}, "prompt"),
    ({"source": "model", "colour": "red"}, "colour"),
    ({"source": "elsewhere"}, "source"),
])
def test_segmentation_json_is_checked_by_schema(tmp_path: Path, record: dict, key: str) -> None:
    (tmp_path / SEGMENTATION).write_text(json.dumps(record))
    with pytest.raises(LungpriorError, match=r"segmentation\.json") as info:
        read_segmentation_record(tmp_path, None)
    assert f": {key}:" in str(info.value)


def test_a_good_segmentation_json_passes(tmp_path: Path) -> None:
    record = {"source": "model", "backend": "litemedsam", "weights_sha256": "ab", "prompt": "auto", "weights": None,
              "masks_dir": "/x", "auto": {"threshold": 0.4, "prior_boxes": [[0, 0, 0.5, 1], [0.5, 0, 1, 1]]}}
    (tmp_path / SEGMENTATION).write_text(json.dumps(record))
    assert read_segmentation_record(tmp_path, None) == record


def test_onnx_runtime_telemetry_is_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import onnxruntime as ort

    from lungprior.onnxrt import TELEMETRY_ENV, onnxruntime

    calls: list[int] = []
    monkeypatch.setattr(ort, "disable_telemetry_events", lambda: calls.append(1))
    monkeypatch.delenv(TELEMETRY_ENV, raising=False)
    OnnxClassifier(_onnx(tmp_path / "ok.onnx"))
    assert calls
    before = len(calls)
    monkeypatch.setenv(TELEMETRY_ENV, "1")
    onnxruntime()
    assert len(calls) == before


def test_a_tampered_onnx_cache_is_not_reused(tmp_path: Path) -> None:
    from lungprior.data.atomic import write_json
    from lungprior.segment.infer.onnx_cache import HASHES_FILE, _intact
    from lungprior.segment.weights import sha256_file

    files = (tmp_path / "encoder.onnx", tmp_path / "decoder.onnx")
    for f in files:
        f.write_bytes(b"graph " + f.name.encode())
    assert not _intact(tmp_path, files)  # no record: exported again
    write_json(tmp_path / HASHES_FILE, {f.name: sha256_file(f) for f in files})
    assert _intact(tmp_path, files)
    files[0].write_bytes(b"graph trunc")
    assert not _intact(tmp_path, files)


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def test_planted_checkpoint_refusal_gives_no_weights_only_advice(tmp_path: Path) -> None:
    from lungprior.checkpoints import load_tensor_file
    from lungprior.classify.run import load_checkpoint

    torch.save({"state_dict": {}, "payload": _Payload()}, tmp_path / "planted.ckpt")
    for load in (lambda p: load_checkpoint(p, "delete it"), load_tensor_file):
        with pytest.raises(LungpriorError, match=r"GLOBAL (builtins\.)?print") as info:
            load(tmp_path / "planted.ckpt")
        assert "weights_only" not in str(info.value) and "safe_globals" not in str(info.value)
        assert "\n" not in str(info.value)


def test_export_full_disk_names_the_output(run: Path, tmp_path: Path) -> None:
    from test_output_errors import _mount, _umount

    disk = tmp_path / "disk"
    if not _mount(disk, "size=256k"):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        with pytest.raises(LungpriorError, match="No space left on device") as info:
            export_run(run, disk / "out")
        assert str(disk / "out" / "classifier.onnx") in str(info.value) and str(run) not in str(info.value)
        assert [p.name for p in (disk / "out").iterdir()] == []
    finally:
        _umount(disk)


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_model_card_holds_no_local_path_and_onnx_carries_its_metadata(run: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from lungprior.classify.backbone import normalisation
    from lungprior.labels import FINDINGS

    masks = tmp_path / "seg" / "masks"
    (run / SEGMENTATION).write_text(json.dumps({
        "source": "model", "masks_dir": str(masks), "backend": "litemedsam", "weights_sha256": "ab" * 32,
        "weights": str(tmp_path / "weights" / "lite_medsam.pth"), "prompt": "auto"}))
    (run / "efficiency.json").write_text(json.dumps({
        "run_dir": str(run), "cache_dir": str(tmp_path / "cache"), "epochs_run": 1, "best_epoch": 1,
        "best_val_auroc": 0.5, "log": str(run / "logs" / "history.csv")}))
    result = export_run(run, tmp_path / "out")
    card = _strict_json(result.card)
    local = [s for s in _strings(card) if str(tmp_path) in s or s.startswith("/")]
    assert local == []
    assert card["training"]["manifest"] == "manifest.csv" and "cache_dir" not in card["training"]["result"]
    assert card["training"]["result"]["log"] == "logs/history.csv"
    assert card["segmentation"]["weights"] == "lite_medsam.pth" and card["segmentation"]["masks_dir"] == "masks"
    mean, std = normalisation("resnet10t")
    assert card["labels"] == list(FINDINGS) and card["input"]["normalisation"] == {"mean": mean, "std": std}

    props = {p.key: p.value for p in onnx.load(str(result.onnx)).metadata_props}
    meta = ort.InferenceSession(str(result.onnx), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map == props
    assert json.loads(props["labels"]) == list(FINDINGS) and props["input_size"] == "32"
    assert float(props["mean"]) == mean and float(props["std"]) == std and props["mask_mode"] == "original"
    assert card["sha256"] == hashlib.sha256(result.onnx.read_bytes()).hexdigest()
