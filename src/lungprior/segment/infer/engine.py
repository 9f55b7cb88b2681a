"""Inference engines over a SAM-style backend: eager PyTorch, or ONNX Runtime on the CPU (faster there)."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import torch

from lungprior.errors import LungpriorError
from lungprior.extras import require
from lungprior.segment.base import SegBackend
from lungprior.segment.infer.onnx_cache import cached_onnx

ENGINES: tuple[str, ...] = ("auto", "torch", "onnx")
#: Backends whose ONNX export is parity-tested; `auto` picks onnx on the CPU only for these.
ONNX_AUTO_BACKENDS: tuple[str, ...] = ("litemedsam",)


class Engine(Protocol):
    """Encodes images and decodes box prompts; the backend still does pre- and postprocessing."""

    name: str

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) model inputs -> (B, C, h, w) embeddings."""
        ...

    def decode(self, embedding: torch.Tensor, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, C, h, w) embedding, (K, 4) boxes in model-input coordinates -> (K, 1, 256, 256) logits and the
        (K, 1) IoU the model predicts for each mask."""
        ...


class TorchEngine:
    """The backend's own PyTorch modules; a batch goes through the encoder in one call."""

    name = "torch"

    def __init__(self, backend: SegBackend) -> None:
        self.backend = backend

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.backend.encode(batch)

    def decode(self, embedding: torch.Tensor, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return self.backend.decode(embedding, torch.from_numpy(np.asarray(boxes, dtype=np.float32)))


def _onnx_session(path: os.PathLike[str]) -> object:
    from lungprior.onnxrt import inference_session, onnxruntime

    ort = onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.use_deterministic_compute = True
    options.log_severity_level = 3
    # Idle worker threads sleep instead of spinning: better when the cores are shared with other jobs or with
    # other shards on the same node.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return inference_session(path, options, "cached segmenter graph")


class OnnxEngine:
    """Encoder and prompt decoder exported to ONNX (cached by weights hash), run by ONNX Runtime on the CPU.

    The exported encoder takes one image at a time, so a batch is encoded image by image.
    """

    name = "onnx"

    def __init__(self, backend: SegBackend, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if backend.device.type != "cpu":
            raise LungpriorError(f"the onnx engine runs on the CPU, not {backend.device}; use --engine torch")
        self.backend = backend
        self.encoder_path, self.decoder_path = cached_onnx(backend, cache_dir)
        self._encoder = _onnx_session(self.encoder_path)
        self._decoder = _onnx_session(self.decoder_path)

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        size = self.backend.input_size
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise LungpriorError(f"onnx: input batch of shape {tuple(batch.shape)}, expected (B, 3, {size}, {size})")
        x = batch.detach().to("cpu", torch.float32).numpy()
        out = [self._encoder.run(["embedding"], {"image": x[i : i + 1]})[0] for i in range(x.shape[0])]
        return torch.from_numpy(np.concatenate(out))

    def decode(self, embedding: torch.Tensor, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        feed = {
            "embedding": embedding.detach().to("cpu", torch.float32).numpy(),
            "boxes": np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4),
        }
        logits, iou = self._decoder.run(["logits", "iou"], feed)
        return torch.from_numpy(logits), torch.from_numpy(iou)


def resolve_engine(engine: str, device: torch.device, backend: str = "litemedsam") -> str:
    """`auto` -> onnx for LiteMedSAM on the CPU when onnxruntime is installed (faster there), torch otherwise."""
    if engine not in ENGINES:
        raise LungpriorError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    if device.type != "cpu" or backend not in ONNX_AUTO_BACKENDS:
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"


def create_engine(
    backend: SegBackend, engine: str = "auto", cache_dir: str | os.PathLike[str] | None = None
) -> Engine:
    """An `Engine` for `backend`: "torch", "onnx" or "auto" (see `resolve_engine`)."""
    name = resolve_engine(engine, backend.device, backend.name)
    if name == "torch":
        return TorchEngine(backend)
    require("onnxruntime", "the onnx engine needs it; or use --engine torch")
    return OnnxEngine(backend, cache_dir)
