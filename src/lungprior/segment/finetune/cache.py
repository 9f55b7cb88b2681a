"""On-disk cache of frozen image-encoder embeddings (float16 .npy), so decoder-only epochs skip the encoder.

A file's key is a hash of the backend name, the image's absolute path, size and modification time, and the
SHA-256 of the base weights: a changed image or other weights never reuses a stale embedding. Files are
written atomically, so a killed run, or several DDP ranks building the same cache, leave no partial files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from lungprior.data.atomic import atomic_open
from lungprior.segment.base import SegBackend


class EmbeddingCache:
    """Embeddings of one backend's (frozen) image encoder, keyed by image file and base weights."""

    def __init__(self, folder: str | os.PathLike[str], backend: SegBackend, weights_sha256: str) -> None:
        self.folder = Path(folder)
        self.backend = backend
        self.weights_sha256 = weights_sha256

    def key(self, image_path: str | os.PathLike[str]) -> str:
        """Hex key of an image file's embedding under this backend and these weights."""
        path = Path(image_path).resolve()
        stat = path.stat()
        text = f"{self.backend.name}|{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.weights_sha256}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]

    def path(self, image_path: str | os.PathLike[str]) -> Path:
        return self.folder / f"{self.key(image_path)}.npy"

    def get(self, image_path: str | os.PathLike[str], model_input: torch.Tensor) -> torch.Tensor:
        """The (1, C, h, w) float32 embedding of `model_input` (3, S, S), computed and stored on a miss."""
        file = self.path(image_path)
        if file.is_file():
            try:
                return torch.from_numpy(np.load(file).astype(np.float32))[None]
            except (OSError, ValueError):
                file.unlink(missing_ok=True)  # unreadable: recompute below
        with torch.no_grad():
            embedding = self.backend.encode(model_input[None])
        array = embedding[0].detach().to("cpu", torch.float16).numpy()
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(file, "wb") as fh:
            np.save(fh, array)
        return torch.from_numpy(array.astype(np.float32))[None]

    def load(self, image_path: str | os.PathLike[str]) -> torch.Tensor:
        """A stored (C, h, w) float32 embedding; `FileNotFoundError` when it was never computed."""
        return torch.from_numpy(np.load(self.path(image_path)).astype(np.float32))
