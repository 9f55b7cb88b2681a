"""Generating the synthetic benchmark on disk, in the NIH manifest format.

Layout of the output folder:
- `images/<id>.png`: 8-bit films; `masks/<id>.png`: ground-truth lungs (patient's right 255, left 128);
- `lesions/<id>.png`: lesion extents, bit k set for `FINDINGS[k]`;
- `manifest.csv` (NIH format), `markers.csv` (which shortcut markers each film carries),
  `summary.json` (counts per label x split), `phantom.json` (the config).
A rerun with the same config skips films already written (files are written atomically), so a killed
generation resumes; a different config in a non-empty folder is refused.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.progress import Progress

from lungprior.data.atomic import atomic_path, remove_stale_temps, write_json
from lungprior.data.claim import claim_folder
from lungprior.data.lock import folder_lock
from lungprior.data.manifest import SPLITS, write_manifest
from lungprior.data.phantom.config import PhantomConfig
from lungprior.data.phantom.plan import FilmPlan, plan_benchmark
from lungprior.data.phantom.render import render_film
from lungprior.labels import FINDINGS, LABELS

SUBDIRS = ("images", "masks", "lesions")


def generate_benchmark(
    cfg: PhantomConfig, out_dir: str | os.PathLike[str], *, workers: int | None = None, progress: bool = True
) -> pd.DataFrame:
    """Generate (or finish generating) the benchmark described by `cfg` in `out_dir`; returns the manifest.

    The folder is locked while generating (a second live generation into it is refused); temporary files
    left by a killed generation are removed first.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "phantom"):
        return _generate(cfg, out, workers, progress)


def _generate(cfg: PhantomConfig, out: Path, workers: int | None, progress: bool) -> pd.DataFrame:
    _claim_folder(out, cfg)
    for folder in (out, *(out / sub for sub in SUBDIRS)):
        remove_stale_temps(folder)
    plans = plan_benchmark(cfg)
    todo = [p for p in plans if not all((out / d / f"{p.image_id}.png").is_file() for d in SUBDIRS)]
    workers = workers or min(len(todo), os.cpu_count() or 1, 8) or 1
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("rendering films", total=len(todo))
        if workers <= 1:
            for p in todo:
                _write_film(p, cfg.size, out)
                bar.advance(task)
        else:
            with mp.get_context("fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_film_star, [(p, cfg.size, out) for p in todo], chunksize=8):
                    bar.advance(task)
    manifest = _manifest(plans, cfg)
    write_manifest(manifest, out / "manifest.csv")
    markers = pd.DataFrame([{"image_id": p.image_id, **{f"marker_{k}": p.markers[k] for k in FINDINGS}} for p in plans])
    with atomic_path(out / "markers.csv") as tmp:
        markers.to_csv(tmp, index=False)
    write_json(out / "summary.json", summarize(manifest))
    return manifest


def summarize(manifest: pd.DataFrame) -> dict:
    """Counts per label x split, images and patients per split."""
    out: dict = {"images": len(manifest), "patients": int(manifest["patient_id"].nunique()), "splits": {}}
    for split in SPLITS:
        part = manifest[manifest["split"] == split]
        out["splits"][split] = {
            "images": len(part),
            "patients": int(part["patient_id"].nunique()),
            "labels": {k: int(part[k].sum()) for k in LABELS},
        }
    out["labels"] = {k: int(manifest[k].sum()) for k in LABELS}
    return out


def _manifest(plans: list[FilmPlan], cfg: PhantomConfig) -> pd.DataFrame:
    rows = []
    for p in plans:
        row = {
            "image_id": p.image_id,
            "path": f"images/{p.image_id}.png",
            "patient_id": p.patient_id,
            "view": "PA",
            "split": p.split,
            **p.labels,
        }
        row["No Finding"] = int(not any(p.labels.values()))
        row["pixel_spacing_mm"] = round(cfg.pixel_spacing_mm, 6)
        rows.append(row)
    return pd.DataFrame(rows)


def _write_film_star(args: tuple[FilmPlan, int, Path]) -> None:
    _write_film(*args)


def _write_film(plan: FilmPlan, size: int, out: Path) -> None:
    image, mask, lesions = render_film(plan, size)
    for sub, arr in zip(SUBDIRS, (image, mask, lesions), strict=True):
        with atomic_path(out / sub / f"{plan.image_id}.png", suffix=".png") as tmp:
            Image.fromarray(np.ascontiguousarray(arr), mode="L").save(tmp, format="PNG", compress_level=1)


def _claim_folder(out: Path, cfg: PhantomConfig) -> None:
    """Record the config in `out/phantom.json`; refuse a folder holding another benchmark or other files."""
    claim_folder(out, "phantom.json", cfg.to_dict(), "a benchmark", fix="choose a new --out folder")
    for sub in SUBDIRS:
        (out / sub).mkdir(parents=True, exist_ok=True)
