"""On-disk cache of frozen image-encoder embeddings (float16 .npy), so decoder-only epochs skip the encoder.

A file's key is a hash of the backend name, the image's absolute path, size and modification time, a digest
of the image encoder's weights and, for an augmented view of the image, the view's name (`variant`): a changed
image or another encoder never reuses a stale embedding, while a model fine-tuned with a frozen encoder shares
the cache of its base (`lungprior segment` reuses what fine-tuning encoded: the films themselves, variant "").
Files are written atomically, so a killed run, or several DDP ranks building the same cache, leave no partial
files. Embeddings are stored as float16; `rounded` gives a fresh embedding the same rounding, so that results
do not depend on whether an embedding came from the cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lungprior.data.atomic import atomic_open
from lungprior.segment.base import SegBackend
from lungprior.segment.weights import weights_digest

Encoder = Callable[[torch.Tensor], torch.Tensor]


def rounded(embedding: torch.Tensor) -> torch.Tensor:
    """A float32 embedding rounded through float16, as the cache stores it."""
    return embedding.detach().to("cpu", torch.float16).to(torch.float32)


class EmbeddingCache:
    """Embeddings of one backend's (frozen) image encoder, keyed by image file and encoder weights.

    `encoder` computes (B, C, h, w) embeddings from (B, 3, S, S) model inputs (default: the backend's own
    PyTorch encoder; an ONNX engine's `encode` is faster on the CPU).
    """

    def __init__(self, folder: str | os.PathLike[str], backend: SegBackend, *, encoder: Encoder | None = None) -> None:
        self.folder = Path(folder)
        self.backend = backend
        self.encoder = encoder or backend.encode
        self.encoder_digest = weights_digest(backend.model.image_encoder)[:24]

    def key(self, image_path: str | os.PathLike[str], variant: str = "") -> str:
        """Hex key of an image file's embedding (or of its view `variant`) under this backend and this encoder."""
        path = Path(image_path).resolve()
        stat = path.stat()
        text = f"{self.backend.name}|{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.encoder_digest}"
        if variant:
            text += f"|{variant}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]

    def path(self, image_path: str | os.PathLike[str], variant: str = "") -> Path:
        return self.folder / f"{self.key(image_path, variant)}.npy"

    def lookup(self, image_path: str | os.PathLike[str], variant: str = "") -> torch.Tensor | None:
        """The stored (1, C, h, w) float32 embedding, or None when absent or unreadable."""
        file = self.path(image_path, variant)
        if not file.is_file():
            return None
        try:
            return torch.from_numpy(np.load(file).astype(np.float32))[None]
        except (OSError, ValueError):
            file.unlink(missing_ok=True)  # unreadable: recomputed by the caller
            return None

    def get(self, image_path: str | os.PathLike[str], model_input: torch.Tensor, variant: str = "") -> torch.Tensor:
        """The (1, C, h, w) float32 embedding of `model_input` (3, S, S), computed and stored on a miss."""
        found = self.lookup(image_path, variant)
        if found is not None:
            return found
        with torch.no_grad():
            embedding = self.encoder(model_input[None])
        return self.put(image_path, embedding, variant)

    def put(self, image_path: str | os.PathLike[str], embedding: torch.Tensor, variant: str = "") -> torch.Tensor:
        """Store a (1, C, h, w) embedding as float16; returns it rounded as stored."""
        array = embedding[0].detach().to("cpu", torch.float16).numpy()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.path(image_path, variant), "wb") as fh:
            np.save(fh, array)
        return torch.from_numpy(array.astype(np.float32))[None]
