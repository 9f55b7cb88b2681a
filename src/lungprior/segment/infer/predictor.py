"""`LungPredictor`: the one way a film is segmented (`segment`, `predict`, fine-tuning checks, the CV benchmark).

In segment-anything's style: `set_film(image)` finds the film inside black borders, preprocesses and encodes it
(with the engine, or from an embedding cache); `predict(mode)` then decodes it with the cascade, given boxes or
one whole-film box and returns the mask and probabilities at the image's full size with the QC row (computed
on the film, stability included). Batch code calls `prepare` and `encode` separately to encode several films
in one encoder call; the result is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lungprior.errors import ImageReadError, LungpriorError
from lungprior.segment.base import SegBackend
from lungprior.segment.embeddings import EmbeddingCache, rounded
from lungprior.segment.infer.borders import film_box, paste_back
from lungprior.segment.infer.cascade import Cascade, LungPrediction
from lungprior.segment.infer.engine import Engine, TorchEngine
from lungprior.segment.infer.prompts import AutoPromptConfig
from lungprior.segment.infer.qc import qc_row, with_film_size
from lungprior.segment.preprocess import Transform

#: Smaller images are refused (an error row), not segmented.
MIN_SIDE = 16
#: An image whose grey levels span less than this (on [0, 1]) is blank: an empty mask, flagged "empty".
BLANK_RANGE = 1.0 / 255.0
#: `predict` modes: the self-prompting cascade, given boxes, one box around the whole film.
MODES: tuple[str, ...] = ("cascade", "boxes", "whole")
#: `lungprior segment --prompt` values (as recorded in segment.json) -> modes.
PROMPT_MODES: dict[str, str] = {"auto": "cascade", "whole": "whole", "csv": "boxes"}
#: The QC row's `prompt_source` of a blank film, per mode (the cascade's is "auto").
_BLANK_SOURCE = {"cascade": "auto", "whole": "whole"}


@dataclass
class PreparedFilm:
    """A film ready for decoding: its crop inside black borders, model input, geometry and (once encoded) embedding."""

    image_id: str
    shape: tuple[int, int]  # the whole image's (H, W)
    box: tuple[int, int, int, int]  # the film inside black margins (y0, y1, x0, x1), end-exclusive
    blank: bool
    tensor: torch.Tensor | None = None
    transform: Transform | None = None
    path: str | os.PathLike[str] | None = None
    embedding: torch.Tensor | None = field(default=None, repr=False)

    @property
    def cropped(self) -> bool:
        return self.box != (0, self.shape[0], 0, self.shape[1])


@dataclass
class FilmPrediction:
    """One film's lung mask and probabilities at the image's full size, its QC row and its prompt boxes."""

    mask: np.ndarray  # bool (H, W)
    prob: np.ndarray  # float32 (H, W)
    qc: dict[str, Any]
    boxes: np.ndarray  # (K, 4) prompt boxes in the film's pixels (inside its borders)
    prompt_source: str
    stability: float = float("nan")


class LungPredictor:
    """Segments films with one backend, engine and cascade setting; see the module docstring.

    `cache`: an `EmbeddingCache` read for films without a border crop (misses are encoded, and all embeddings
    rounded through float16 as the cache stores them, so results do not depend on where one came from);
    `store=True` also writes misses to it.
    """

    def __init__(self, backend: SegBackend, engine: Engine | None = None, config: AutoPromptConfig | None = None, *,
                 cache: EmbeddingCache | None = None, store: bool = False) -> None:
        self.backend = backend
        self.engine = engine or TorchEngine(backend)
        self.cascade = Cascade(self.engine, backend, config)
        self.cache, self.store = cache, store
        self.film: PreparedFilm | None = None

    @property
    def config(self) -> AutoPromptConfig:
        return self.cascade.config

    def prepare(self, image: np.ndarray, image_id: str = "", path: str | os.PathLike[str] | None = None
                ) -> PreparedFilm:
        """Crop the black borders and preprocess (no encoding); a too small image raises `ImageReadError`."""
        if min(image.shape) < MIN_SIDE:
            raise ImageReadError(path or image_id, f"image of {image.shape[0]}x{image.shape[1]} pixels is too small "
                                 f"(< {MIN_SIDE})")
        shape = (int(image.shape[0]), int(image.shape[1]))
        film = PreparedFilm(image_id, shape, film_box(image), float(image.max() - image.min()) < BLANK_RANGE,
                            path=path)
        if not film.blank:
            y0, y1, x0, x1 = film.box
            film.tensor, film.transform = self.backend.preprocess(image[y0:y1, x0:x1] if film.cropped else image)
        return film

    def encode(self, films: list[PreparedFilm]) -> None:
        """Give every non-blank film its (1, C, h, w) embedding: from the cache, or encoded in one batch."""
        todo = [f for f in films if not f.blank and f.embedding is None]
        use_cache = [self.cache is not None and f.path is not None and not f.cropped for f in todo]
        missing = []
        for film, cached in zip(todo, use_cache, strict=True):
            film.embedding = self.cache.lookup(film.path) if cached else None
            if film.embedding is None:
                missing.append(film)
        if not missing:
            return
        encoded = self.engine.encode(torch.stack([f.tensor for f in missing]))
        for k, film in enumerate(missing):
            one = encoded[k : k + 1]
            film.embedding = rounded(one) if self.cache is not None else one
            if self.store and self.cache is not None and film.path is not None and not film.cropped:
                self.cache.put(film.path, one)

    def set_film(self, image: np.ndarray, image_id: str = "", path: str | os.PathLike[str] | None = None
                 ) -> PreparedFilm:
        """Prepare and encode one film; the next `predict` calls decode it."""
        film = self.prepare(image, image_id, path)
        self.encode([film])
        self.film = film
        return film

    def predict(self, mode: str = "cascade", boxes: np.ndarray | None = None, *, source: str = "csv",
                film: PreparedFilm | None = None) -> FilmPrediction:
        """The film's prediction by `mode` (see `MODES`); `boxes` ((K, 4) in the image's pixels) for "boxes"."""
        film = film or self.film
        if film is None:
            raise LungpriorError("no film set: call set_film(image) first")
        if mode not in MODES:
            raise LungpriorError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        if mode == "boxes" and boxes is None:
            raise LungpriorError(f"{film.image_id}: mode 'boxes' needs boxes")
        if film.blank:
            return self._blank(film, _BLANK_SOURCE.get(mode, source))
        if film.embedding is None:
            self.encode([film])
        if mode == "cascade":
            pred = self.cascade.auto(film.embedding, film.transform)
        elif mode == "whole":
            pred = self.cascade.whole(film.embedding, film.transform)
        else:
            pred = self.cascade.boxes(film.embedding, film.transform, self._film_boxes(film, boxes), source)
        return self._finish(film, pred)

    @staticmethod
    def _film_boxes(film: PreparedFilm, boxes: np.ndarray) -> np.ndarray:
        """Boxes in the image's pixels -> in the film's (inside its borders), clipped to it."""
        h, w = film.transform.original_size
        y0, _, x0, _ = film.box
        shifted = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - [x0, y0, x0, y0]
        return np.clip(shifted, 0.0, [w - 1.0, h - 1.0, w - 1.0, h - 1.0])

    @staticmethod
    def _finish(film: PreparedFilm, pred: LungPrediction) -> FilmPrediction:
        row = qc_row(film.image_id, pred.mask, pred.prob, pred.prompt_source, pred.stability,
                     pred.pred_iou)  # on the film
        row = with_film_size(row, pred.mask.shape)
        mask, prob = pred.mask, pred.prob
        if film.cropped:
            mask, prob = paste_back(mask, film.box, film.shape), paste_back(prob, film.box, film.shape)
        return FilmPrediction(mask, prob, row, pred.boxes, pred.prompt_source, pred.stability)

    @staticmethod
    def _blank(film: PreparedFilm, source: str) -> FilmPrediction:
        empty = np.zeros(film.shape, dtype=bool)
        prob = empty.astype(np.float32)
        row = {**qc_row(film.image_id, empty, prob, source), "reason": "blank image (no contrast)"}
        return FilmPrediction(empty, prob, row, np.zeros((0, 4)), source)
