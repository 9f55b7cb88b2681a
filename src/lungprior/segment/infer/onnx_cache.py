"""The SAM-style encoder and prompt decoder exported to ONNX, cached on disk by the weights' hash.

The encoder graph has a fixed batch of one image (TinyViT reads the batch size as a Python int while
tracing); the decoder graph takes any number of boxes for one image embedding.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from lungprior.data.atomic import atomic_path, write_json
from lungprior.data.regular import regular_file_problem
from lungprior.errors import LungpriorError, one_line
from lungprior.onnxrt import onnxruntime
from lungprior.segment.base import SegBackend, decode_prompts
from lungprior.segment.weights import sha256_file, weights_digest

#: Bump when the exported graphs change, so that older cache entries are not reused.
ONNX_FORMAT = 1
OPSET = 17
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
#: SHA-256 of each exported file, written after the export and checked before a cached file is reused.
HASHES_FILE = "hashes.json"


def default_cache_dir() -> Path:
    """`$LUNGPRIOR_CACHE_DIR/onnx`, else `$XDG_CACHE_HOME/lungprior/onnx`, else `~/.cache/lungprior/onnx`."""
    root = os.environ.get("LUNGPRIOR_CACHE_DIR")
    if root:
        return Path(root) / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lungprior" / "onnx"


class PromptDecoder(torch.nn.Module):
    """Prompt encoder + mask decoder of one image: (1, C, h, w) embedding, (K, 4) boxes -> (K, 1, 256, 256)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.prompt_encoder = net.prompt_encoder
        self.mask_decoder = net.mask_decoder

    def forward(self, embedding: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_prompts(self, embedding, boxes)


def _export(module: torch.nn.Module, args: tuple, path: Path, **kwargs: object) -> None:
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(tmp), opset_version=OPSET, dynamo=False, **kwargs)


def export_onnx(backend: SegBackend, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Export `backend`'s image encoder and prompt decoder to `folder` (atomically); returns their paths."""
    folder = Path(folder)
    net = backend.model
    if next(net.parameters()).device.type != "cpu":
        raise LungpriorError("the onnx engine runs on the CPU: create the backend with device='cpu'")
    size = backend.input_size
    image = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        embedding = net.image_encoder(image)
    boxes = torch.tensor([[0.1 * size, 0.1 * size, 0.45 * size, 0.8 * size], [0.55 * size, 0.1 * size, 0.9 * size,
                                                                             0.8 * size]])
    was_training = net.training
    net.eval()
    try:
        enc, dec = folder / ENCODER_FILE, folder / DECODER_FILE
        if not enc.is_file():
            _export(net.image_encoder, (image,), enc, input_names=["image"], output_names=["embedding"])
        if not dec.is_file():
            _export(
                PromptDecoder(net), (embedding, boxes), dec,
                input_names=["embedding", "boxes"], output_names=["logits", "iou"],
                dynamic_axes={"boxes": {0: "k"}, "logits": {0: "k"}, "iou": {0: "k"}},
            )
    except Exception as exc:  # the exporter raises many types
        raise LungpriorError(f"{backend.name}: ONNX export failed ({one_line(exc)})") from exc
    finally:
        net.train(was_training)
    return enc, dec


def cached_onnx(backend: SegBackend, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Encoder/decoder ONNX files for `backend`'s current weights, exported on first use.

    The cache is untrusted: a file whose SHA-256 differs from the one recorded at export (`hashes.json`), a
    truncated or replaced `encoder.onnx`, is exported again instead of being loaded.
    """
    onnxruntime()  # telemetry off before any session is made
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"{backend.name}-{weights_digest(backend.model)[:20]}-v{ONNX_FORMAT}"
    enc, dec = folder / ENCODER_FILE, folder / DECODER_FILE
    if _intact(folder, (enc, dec)):
        return enc, dec
    for path in (enc, dec):
        if path.exists() and not path.is_dir():
            path.unlink()
    enc, dec = export_onnx(backend, folder)
    write_json(folder / HASHES_FILE, {p.name: sha256_file(p) for p in (enc, dec)})
    return enc, dec


def _intact(folder: Path, files: tuple[Path, ...]) -> bool:
    """True when every file is a regular file with the SHA-256 recorded in `hashes.json`."""
    try:
        recorded = json.loads((folder / HASHES_FILE).read_text(encoding="utf-8"))
        return isinstance(recorded, dict) and all(
            regular_file_problem(p) is None and recorded.get(p.name) == sha256_file(p) for p in files
        )
    except (OSError, ValueError, LungpriorError):
        return False
