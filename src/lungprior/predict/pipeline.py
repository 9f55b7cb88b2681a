"""`predict_films`: segment, mask and score new films with a finished run; resumable, bad files recorded.

OUT gets `predictions.csv` (one row per film), `errors.csv` (unreadable files), `masks/<id>.png`,
`films/<id>.png` (film, lung outline, Grad-CAM, scores), `index.html` and `predict.json` (the settings; a rerun
with other settings is refused, a rerun with the same ones scores only the films not yet in predictions.csv).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lungprior.classify.config import TrainConfig
from lungprior.data.atomic import write_json
from lungprior.data.claim import claim_folder
from lungprior.data.io import read_image, write_mask
from lungprior.data.lock import locks_output
from lungprior.errors import ImageReadError, LungpriorError
from lungprior.evaluate.scores import no_finding_score
from lungprior.labels import FINDINGS
from lungprior.layout import CONFIG, METRICS, MODEL, mask_name, score_column
from lungprior.predict.classifier import (
    OnnxClassifier,
    ScoringEngine,
    TorchClassifier,
    calibrate,
    model_input,
    read_calibration,
    top_finding,
)
from lungprior.predict.figure import film_figure
from lungprior.predict.inputs import Film, collect_films, film_spacing
from lungprior.predict.page import write_index
from lungprior.predict.segmenter import Segmenter, resolve_segmentation
from lungprior.segment.infer.records import CsvLog, read_rows, write_rows

COLUMNS: tuple[str, ...] = (
    "image_id", "path", "scored", "status", *(score_column(k) for k in FINDINGS), score_column("no_finding"),
    "top_finding", "calibrated", "qc_flag", "qc_reason", "area_fraction", "mask_path", "figure",
)
ERROR_COLUMNS: tuple[str, ...] = ("image_id", "path", "reason")
SETTINGS = "predict.json"
CLASSIFIER_ENGINES: tuple[str, ...] = ("torch", "onnx")


@dataclass
class PredictResult:
    """What a batch did and where, with the time spent in each stage (seconds, this call only)."""

    out_dir: Path
    total: int
    scored: int
    not_scored: int
    failed: int
    skipped: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.scored + self.not_scored + self.failed


#: The status of a film that lung QC held back (a rerun with --allow-qc-fail scores it).
QC_HELD = "not scored: lung QC failed (pass --allow-qc-fail to score it anyway)"


@locks_output("predict", "out_dir", 2)  # a second live run into one --out is refused
def predict_films(
    run_dir: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
    engine: str = "torch", seg_engine: str = "auto", device: str = "cpu", allow_qc_fail: bool = False,
    cam: bool = True, seg_backend: str | None = None, seg_weights: str | os.PathLike[str] | None = None,
    spacing_mm: float | None = None, onnx_model: str | os.PathLike[str] | None = None, page: bool = True,
    no_finding: str | None = None,
) -> PredictResult:
    """Score every film of `inputs` with the run in `run_dir` into `out_dir` (see the module docstring).

    `engine`: the classifier in PyTorch or ONNX Runtime (an exported `classifier.onnx`, exported into
    `OUT/onnx/` when `onnx_model` is not given); `seg_engine`: the segmentation engine (auto, torch, onnx).
    `cam` draws the Grad-CAM of the top finding (needs PyTorch's autograd; off, nothing uses it).
    `spacing_mm`: pixel spacing for films that do not state one. A mask whose width is in mm (loose, bbox,
    crop) needs a spacing for every film: without one the batch is refused before any work, naming the flag.
    `no_finding`: the No Finding score, "max" (1 - max p) or "prod" (prod (1 - p)); default: the method of the
    run's own evaluation (`metrics.json`), else "max".
    """
    start = time.perf_counter()
    if engine not in CLASSIFIER_ENGINES:
        raise LungpriorError(f"unknown --engine {engine!r}; choose from {', '.join(CLASSIFIER_ENGINES)}")
    if spacing_mm is not None and not (math.isfinite(spacing_mm) and spacing_mm > 0):
        raise LungpriorError(f"--spacing-mm must be a positive number of millimetres per pixel, got {spacing_mm}")
    run = Path(run_dir)
    if not (run / CONFIG).is_file() or not (run / MODEL).is_file():
        raise LungpriorError(f"{run}: not a finished training run (needs {CONFIG} and {MODEL})")
    cfg = TrainConfig.from_json(run / CONFIG)
    seg = resolve_segmentation(run, cfg, backend=seg_backend, weights=seg_weights)
    films = collect_films(inputs)
    method = no_finding or _run_no_finding(run)
    no_finding_score(np.zeros((1, len(FINDINGS))), method)  # an unknown method: one error before any work
    out = Path(out_dir)
    calibration = read_calibration(run)
    settings = {"run": str(run.resolve()), "engine": engine, "allow_qc_fail": allow_qc_fail, "cam": cam,
                "segmentation": seg.to_dict(), "spacing_mm": spacing_mm, "calibrated": calibration is not None,
                "no_finding": method}
    # other settings: refused; --allow-qc-fail may be added on a rerun, which then scores the films QC held back
    old = claim_folder(out, SETTINGS, settings, "predictions", owns_folder=False, ignore=("allow_qc_fail",))
    pred_path, err_path = out / "predictions.csv", out / "errors.csv"
    rows = read_rows(pred_path, COLUMNS) if pred_path.is_file() else []
    if old is not None and old.get("allow_qc_fail") != allow_qc_fail:
        held = {r["image_id"] for r in rows if r.get("status") == QC_HELD} if allow_qc_fail else set()
        if held:
            write_rows(pred_path, COLUMNS, rows, drop=held)
            rows = [r for r in rows if r["image_id"] not in held]
        write_json(out / SETTINGS, settings)
    done = {r["image_id"] for r in rows}
    todo = [f for f in films if f.image_id not in done]
    if spacing_mm is None:
        _check_spacing(cfg, todo)
    result = PredictResult(out, len(films), 0, 0, 0, len(films) - len(todo))
    times = dict.fromkeys(("load", "decode", "segment", "classify", "cam", "figure"), 0.0)
    if todo:
        t0 = time.perf_counter()
        segmenter = Segmenter(seg, engine=seg_engine, device=device)
        torch_model = TorchClassifier(run, device) if (engine == "torch" or cam) else None
        scorer = torch_model if engine == "torch" else OnnxClassifier(onnx_model or _exported(run, out))
        times["load"] = time.perf_counter() - t0
        step = _Step(cfg, segmenter, scorer, torch_model if cam else None, calibration, allow_qc_fail, spacing_mm,
                     out, times, method)
        with CsvLog(pred_path, COLUMNS) as log, CsvLog(err_path, ERROR_COLUMNS) as errors:
            for film in todo:
                row = step(film)
                if "reason" in row:
                    errors.append(row)
                    result.failed += 1
                else:
                    log.append(row)
                    result.scored += row["scored"] == "yes"
                    result.not_scored += row["scored"] != "yes"
    finished = {r["image_id"] for r in read_rows(pred_path, COLUMNS)}
    write_rows(pred_path, COLUMNS, read_rows(pred_path, COLUMNS))
    write_rows(err_path, ERROR_COLUMNS, read_rows(err_path, ERROR_COLUMNS) if err_path.is_file() else [], drop=finished)
    if page:
        t0 = time.perf_counter()
        table = pd.read_csv(pred_path, dtype=str, keep_default_na=False)
        write_index(out, table, pd.read_csv(err_path, dtype=str, keep_default_na=False),
                    f"lungprior predict: {run.name} ({cfg.backbone}, {cfg.mask_spec().key()})")
        times["page"] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - start
    result.seconds = times
    return result


def _run_no_finding(run: Path) -> str:
    """The No Finding method of the run's evaluation (`metrics.json`), or "max"."""
    try:
        method = json.loads((run / METRICS).read_text(encoding="utf-8"))["no_finding"]["method"]
    except (OSError, ValueError, KeyError, TypeError):
        return "max"
    return str(method)


def _check_spacing(cfg: TrainConfig, films: list[Film]) -> None:
    """Refuse, before any work, a batch with films of unknown pixel spacing when the run's mask is sized in mm."""
    lungs = np.zeros((64, 64), dtype=bool)
    lungs[8:56, 8:28] = lungs[8:56, 36:56] = True
    try:
        model_input(np.zeros((64, 64), np.float32), lungs, cfg, None)
        return  # the mask does not depend on the spacing
    except LungpriorError:
        pass
    unknown = [f for f in films if film_spacing(f) is None]
    if unknown:
        spec = cfg.mask_spec()
        raise LungpriorError(
            f"{len(unknown)} of {len(films)} films state no pixel spacing (first: {unknown[0].path}) and the run's "
            f"{spec.mode} mask is {spec.radius_mm:g} mm wide; pass --spacing-mm MM (the films' pixel spacing)"
        )


def _exported(run: Path, out: Path) -> Path:
    from lungprior.classify.export import ONNX_FILE, export_run

    path = out / "onnx" / ONNX_FILE
    if not path.is_file():
        export_run(run, out / "onnx")
    return path


class _Step:
    """One film: decode -> segment -> QC -> mask -> score -> Grad-CAM -> picture; returns its row."""

    def __init__(self, cfg: TrainConfig, segmenter: Segmenter, scorer: ScoringEngine, cam_model: TorchClassifier | None,
                 calibration: dict | None, allow_qc_fail: bool, spacing_mm: float | None, out: Path,
                 times: dict[str, float], no_finding: str) -> None:
        self.cfg, self.segmenter, self.scorer, self.cam_model = cfg, segmenter, scorer, cam_model
        self.calibration, self.allow_qc_fail, self.spacing_mm = calibration, allow_qc_fail, spacing_mm
        self.out, self.times, self.no_finding = out, times, no_finding
        (out / "masks").mkdir(parents=True, exist_ok=True)
        (out / "films").mkdir(parents=True, exist_ok=True)

    def _timed(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.times[stage] += now - t0
        return now

    def __call__(self, film: Film) -> dict[str, Any]:
        t = time.perf_counter()
        try:
            image, meta = read_image(film.path)
            t = self._timed("decode", t)
            lungs = self.segmenter(film.image_id, image)
        except ImageReadError as exc:
            self._timed("decode", t)
            return {"image_id": film.image_id, "path": str(film.path), "reason": exc.reason}
        except LungpriorError as exc:
            self._timed("decode", t)
            return {"image_id": film.image_id, "path": str(film.path), "reason": str(exc)}
        mask_path = self.out / "masks" / mask_name(film.image_id)
        write_mask(mask_path, lungs.mask)
        t = self._timed("segment", t)
        qc = lungs.qc
        row: dict[str, Any] = {
            "image_id": film.image_id, "path": str(film.path), "qc_flag": qc["flag"], "qc_reason": qc["reason"],
            "area_fraction": f"{float(qc['area_fraction']):.4f}", "mask_path": f"masks/{mask_path.name}",
            "calibrated": "yes" if self.calibration is not None else "no",
        }
        figure = self.out / "films" / mask_path.name
        spacing = film.spacing_mm or meta.pixel_spacing_mm or self.spacing_mm
        needs = self.cfg.mask_spec().needs_mask
        reason = ""
        if qc["flag"] != "ok" and not self.allow_qc_fail:
            reason = QC_HELD
        elif needs and not lungs.mask.any():
            reason = "not scored: empty lung mask, nothing to keep"
        if reason:
            row.update(scored="no", status=reason, top_finding="", figure=f"films/{figure.name}")
            film_figure(figure, image, lungs.mask, None, None, None, title=film.image_id, top=None, note=reason)
            self._timed("figure", t)
            return row
        try:
            x, view = model_input(image, lungs.mask, self.cfg, spacing)
        except LungpriorError as exc:
            hint = "; pass --spacing-mm" if "spacing" in str(exc) else ""
            return {"image_id": film.image_id, "path": str(film.path), "reason": f"{exc}{hint}"}
        probs = self.scorer.probabilities(x)[0].astype(np.float64)
        if self.calibration is not None:
            probs = calibrate(probs, self.calibration)
        top = top_finding(probs)
        t = self._timed("classify", t)
        status = "scored" if qc["flag"] == "ok" else "scored although lung QC failed (--allow-qc-fail)"
        row.update(scored="yes", status=status, top_finding=FINDINGS[top], figure=f"films/{figure.name}",
                   p_no_finding=f"{float(no_finding_score(probs[None], self.no_finding)[0]):.6f}",
                   **{score_column(k): f"{float(p):.6f}" for k, p in zip(FINDINGS, probs, strict=True)})
        cam = self.cam_model.cam(x, top) if self.cam_model is not None else None
        t = self._timed("cam", t)
        film_figure(figure, image, lungs.mask, view, cam, probs, title=film.image_id, top=top,
                    note="" if qc["flag"] == "ok" else f"lung QC: {qc['reason']}")
        self._timed("figure", t)
        return row
