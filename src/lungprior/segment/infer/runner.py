"""`segment_manifest`: segment every image of a manifest, in batches, resumable, sharded, with QC and errors."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lungprior.data.atomic import write_json
from lungprior.data.io import read_image, write_mask
from lungprior.data.lock import folder_lock
from lungprior.data.manifest import read_manifest, resolve
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.layout import MASKS_DIR, errors_path, mask_name, mask_path_for, qc_path, shard_done_path
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.infer.engine import ENGINES, create_engine
from lungprior.segment.infer.predictor import PROMPT_MODES, LungPredictor, PreparedFilm
from lungprior.segment.infer.progress import image_progress
from lungprior.segment.infer.prompts import AutoPromptConfig, read_prompt_csv
from lungprior.segment.infer.qc import QC_COLUMNS, flag_counts
from lungprior.segment.infer.records import (
    ERROR_COLUMNS,
    CsvLog,
    finished_ids,
    merge_shards,
    read_rows,
    repair,
    shard_files,
    write_rows,
)
from lungprior.segment.infer.settings import check_settings, run_settings
from lungprior.segment.infer.shards import local_device, resolve_shard
from lungprior.segment.registry import create_backend
from lungprior.segment.weights import sha256_file


@dataclass
class SegmentResult:
    """What a run did (`done` segmented now, `skipped` finished before, `failed` unreadable) and where.

    `flagged` counts this call's films by QC flag reason (a film with two reasons counts under each).
    """

    out_dir: Path
    masks_dir: Path
    qc_path: Path
    errors_path: Path
    total: int
    done: int
    skipped: int
    failed: int
    seconds: float  # the whole call, model loading included
    process_seconds: float  # reading, segmenting and writing the images
    engine: str
    shard: tuple[int, int] | None
    merged: bool
    qc_flagged: int = 0
    flag_reasons: dict[str, int] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)  # as recorded in segment.json

    @property
    def images_per_s(self) -> float:
        """Segmented images per second of processing (model loading excluded)."""
        return self.done / self.process_seconds if self.process_seconds > 0 else 0.0


@dataclass
class _Item:
    image_id: str
    path: Path
    film: PreparedFilm | None = None
    error: str | None = None


def _prompt_mode(prompt: str | os.PathLike[str]) -> tuple[str, dict[str, np.ndarray] | None]:
    text = str(prompt)
    if text in ("auto", "whole"):
        return text, None
    path = Path(text)
    if path.suffix.lower() != ".csv" and not path.exists():
        raise LungpriorError(f"prompt {text!r}: expected auto, whole or a CSV file of boxes")
    return "csv", read_prompt_csv(path)


def _check_mask_names(df: pd.DataFrame) -> None:
    seen: dict[str, str] = {}
    for image_id in df["image_id"].astype(str):
        name = mask_name(image_id)
        if name in seen:
            raise LungpriorError(f"image ids {seen[name]!r} and {image_id!r} would share the mask file {name}")
        seen[name] = image_id


def _load(predictor: LungPredictor, image_id: str, path: Path) -> _Item:
    item = _Item(image_id, path)
    try:
        image, _ = read_image(path)
        item.film = predictor.prepare(image, image_id, path)
    except ImageReadError as exc:
        item.error = exc.reason
    except LungpriorError as exc:
        item.error = str(exc)
    return item


def _batches(rows: list[tuple[str, Path]], size: int, predictor: LungPredictor) -> Iterator[list[_Item]]:
    """Loaded batches; the next batch is read in a background thread while the current one is segmented."""
    chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:

        def submit(chunk: list[tuple[str, Path]]) -> Future[list[_Item]]:
            return pool.submit(lambda: [_load(predictor, i, p) for i, p in chunk])

        pending = submit(chunks[0])
        for k in range(len(chunks)):
            batch = pending.result()
            if k + 1 < len(chunks):
                pending = submit(chunks[k + 1])
            yield batch


class _Job:
    """Segments loaded batches and logs each finished image (mask first, then its QC row)."""

    def __init__(self, predictor: LungPredictor, mode: str, boxes: dict[str, np.ndarray] | None, prompt: object,
                 masks_dir: Path, qc_log: CsvLog, err_log: CsvLog, advance: Callable[[], None]) -> None:
        self.predictor, self.mode, self.boxes, self.prompt = predictor, mode, boxes, prompt
        self.masks_dir, self.qc_log, self.err_log, self.advance = masks_dir, qc_log, err_log, advance
        self.done = self.failed = 0
        self.rows: list[dict[str, object]] = []

    def run(self, batch: list[_Item]) -> None:
        for item in batch:
            if item.error is None and self.mode == "csv" and item.image_id not in self.boxes:
                item.error = f"no box for this image in {self.prompt}"
            if item.error is not None:
                self.err_log.append({"image_id": item.image_id, "path": str(item.path), "reason": item.error})
                self.failed += 1
                self.advance()
        good = [item for item in batch if item.error is None]
        self.predictor.encode([item.film for item in good])
        for item in good:
            pred = self.predictor.predict(PROMPT_MODES[self.mode], (self.boxes or {}).get(item.image_id),
                                          film=item.film)
            item.film.embedding = None  # free it
            write_mask(mask_path_for(self.masks_dir, item.image_id), pred.mask)
            self.qc_log.append(pred.qc)
            self.rows.append(pred.qc)
            self.done += 1
            self.advance()


def _all_shards_done(out: Path, n: int, manifest_sha256: str) -> bool:
    """Every shard of n has a done marker written for this manifest."""
    for k in range(n):
        path = shard_done_path(out, (k, n))
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("manifest_sha256") != manifest_sha256:
                return False
        except (OSError, ValueError):
            return False
    return True


def segment_manifest(
    manifest: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    backend: str = "litemedsam",
    weights: str | os.PathLike[str] | None = None,
    prompt: str | os.PathLike[str] = "auto",
    batch_size: int = 4,
    shard: str | tuple[int, int] | None = None,
    device: str = "cpu",
    progress: bool = True,
    engine: str = "auto",
    config: AutoPromptConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    embedding_cache: str | os.PathLike[str] | None = None,
) -> SegmentResult:
    """Segment the lungs of every image in `manifest` (or of shard i/n of it) into `out_dir`.

    Writes `masks/<mask name>.png` (0/255, the image's size), `qc.csv` and `errors.csv` (per shard:
    `qc.shard-i.csv`, `errors.shard-i.csv`, merged when the last shard finishes). A rerun skips finished
    images. `prompt`: "auto" (the cascade), "whole" (one whole-image box) or a CSV of boxes per image id.
    The folder (or the shard) is locked for the run: a second live run into it is refused with one line.
    `embedding_cache`: a folder of float16 encoder embeddings (e.g. a frozen-encoder fine-tuning run's `cache/`)
    to reuse instead of encoding again; it is only read, and every embedding is rounded the same way.
    """
    start = time.perf_counter()
    if batch_size < 1:
        raise LungpriorError(f"batch size must be >= 1, got {batch_size}")
    if engine not in ENGINES:
        raise LungpriorError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    config = config or AutoPromptConfig()
    df = read_manifest(manifest, labels=False)
    mode, boxes = _prompt_mode(prompt)
    shard_t = resolve_shard(shard)
    _check_mask_names(df)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "segment", None if shard_t is None else shard_t[0]):
        return _segment_locked(df, manifest, out, shard_t, mode, boxes, start, backend=backend, weights=weights,
                               prompt=prompt, batch_size=batch_size, device=device, progress=progress,
                               engine=engine, config=config, cache_dir=cache_dir, embedding_cache=embedding_cache)


def _segment_locked(
    df: pd.DataFrame, manifest: str | os.PathLike[str], out: Path, shard_t: tuple[int, int] | None, mode: str,
    boxes: dict[str, np.ndarray] | None, start: float, *, backend: str, weights: str | os.PathLike[str] | None,
    prompt: str | os.PathLike[str], batch_size: int, device: str, progress: bool, engine: str,
    config: AutoPromptConfig, cache_dir: str | os.PathLike[str] | None,
    embedding_cache: str | os.PathLike[str] | None,
) -> SegmentResult:
    """`segment_manifest` once this process holds the folder's (or its shard's) lock."""
    masks_dir = out / MASKS_DIR
    masks_dir.mkdir(parents=True, exist_ok=True)
    settings = run_settings(backend, weights, mode, prompt, config,
                            "float16" if embedding_cache is not None else "float32")
    check_settings(out, settings)
    own_qc, own_errors = qc_path(out, shard_t), errors_path(out, shard_t)
    repair(own_qc, QC_COLUMNS)
    repair(own_errors, ERROR_COLUMNS)
    rows = df if shard_t is None else df.iloc[shard_t[0] :: shard_t[1]]
    ids = rows["image_id"].astype(str).tolist()
    finished = finished_ids(out)
    todo = [(i, resolve(df, p)) for i, p in zip(ids, rows["path"].astype(str), strict=True)
            if not (i in finished and mask_path_for(masks_dir, i).is_file())]
    done = failed = flagged = 0
    reasons: dict[str, int] = {}
    engine_name = "-"
    process_seconds = 0.0
    if todo:
        net = create_backend(backend, weights, local_device(device))
        eng = create_engine(net, engine, cache_dir)
        engine_name = eng.name
        process_start = time.perf_counter()
        with CsvLog(own_qc, QC_COLUMNS) as qc_log, CsvLog(own_errors, ERROR_COLUMNS) as err_log, \
                image_progress(len(todo), enabled=progress) as advance:
            cache = EmbeddingCache(embedding_cache, net) if embedding_cache is not None else None
            predictor = LungPredictor(net, eng, config, cache=cache)
            job = _Job(predictor, mode, boxes, prompt, masks_dir, qc_log, err_log, advance)
            for batch in _batches(todo, batch_size, predictor):
                job.run(batch)
        done, failed = job.done, job.failed
        reasons = flag_counts(job.rows)
        flagged = sum(row["flag"] != "ok" for row in job.rows)
        process_seconds = time.perf_counter() - process_start
    write_rows(own_qc, QC_COLUMNS, read_rows(own_qc, QC_COLUMNS))
    write_rows(own_errors, ERROR_COLUMNS, read_rows(own_errors, ERROR_COLUMNS), drop=finished_ids(out))
    merged = False
    if shard_t is not None:
        marker = {"shard": list(shard_t), "images": len(ids), "manifest_sha256": sha256_file(manifest)}
        write_json(shard_done_path(out, shard_t), marker)
        if _all_shards_done(out, shard_t[1], marker["manifest_sha256"]):
            merge_shards(out)
            merged = True
    elif shard_files(out, "qc") or shard_files(out, "errors"):  # a folder that was run sharded before
        merge_shards(out)
    return SegmentResult(
        out_dir=out, masks_dir=masks_dir, qc_path=own_qc if not merged else qc_path(out),
        errors_path=own_errors if not merged else errors_path(out), total=len(ids), done=done,
        skipped=len(ids) - len(todo), failed=failed, seconds=time.perf_counter() - start,
        process_seconds=process_seconds, engine=engine_name,
        shard=shard_t, merged=merged, qc_flagged=flagged, flag_reasons=reasons, settings=settings,
    )
