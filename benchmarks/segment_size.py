"""Below which film size is the lung segmenter unreliable? Segment real films downscaled to a range of sizes.

    python benchmarks/segment_size.py --data SEGDATA [--sizes 64,96,128,192,256] [--max-films 15] --out DIR

Takes the films of a segdata folder (e.g. `lungprior segdata --structure-csv ... --max-side 1024`), downsizes
each film and its ground truth so that the long side is each of `--sizes` (and keeps the film itself), segments
them with the bundled LiteMedSAM through `LungPredictor` (auto cascade, as `lungprior segment`) and writes the
Dice per film and size to DIR/size.csv and the mean per size to DIR/size.md. `--good-only RUN_EVAL` keeps films
whose full-size Dice in that `segeval` folder's films.csv is at least 0.85, so that size is the only cause.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from lungprior.data.io import read_image, read_mask
from lungprior.data.manifest import read_seg_manifest, resolve
from lungprior.segment.infer.engine import create_engine
from lungprior.segment.infer.predictor import LungPredictor
from lungprior.segment.overlap import dice
from lungprior.segment.registry import create_backend


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--sizes", default="64,96,128,192,256")
    p.add_argument("--max-films", type=int, default=15)
    p.add_argument("--good-only", default=None, help="a segeval folder: keep films with full-size Dice >= 0.85")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Path(args.data) / "manifest.csv"
    df = read_seg_manifest(manifest).sort_values("image_id", kind="stable").reset_index(drop=True)
    df.attrs["root"] = str(manifest.resolve().parent)
    if args.good_only:
        films = pd.read_csv(Path(args.good_only) / "films.csv", dtype={"image_id": str})
        good = set(films.loc[films["dice"] >= 0.85, "image_id"])
        df = df[df["image_id"].astype(str).isin(good)]
    df = df.head(args.max_films)
    backend = create_backend("litemedsam", None, torch.device("cpu"))
    predictor = LungPredictor(backend, create_engine(backend, "auto"))
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for _, r in df.iterrows():
        image, _ = read_image(resolve(df, r["path"]))
        truth = read_mask(resolve(df, r["mask_path"])) > 0
        for size in [*sizes, max(image.shape)]:
            scale = size / max(image.shape)
            shape = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = cv2.resize(image, shape, interpolation=cv2.INTER_AREA) if scale < 1 else image
            gt = cv2.resize(truth.astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST) > 0 if scale < 1 else truth
            predictor.set_film(small, str(r["image_id"]))
            pred = predictor.predict("cascade")
            rows.append({"image_id": r["image_id"], "size": size if scale < 1 else "full",
                         "dice": dice(pred.mask, gt), "flag": pred.qc["flag"], "reason": pred.qc["reason"]})
        print(rows[-1]["image_id"], [f"{x['dice']:.3f}" for x in rows[-len(sizes) - 1:]], flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "size.csv", index=False)
    summary = table.groupby("size", sort=False).agg(
        films=("dice", "size"), dice_mean=("dice", "mean"), dice_min=("dice", "min"),
        below_085=("dice", lambda d: int((d < 0.85).sum())), flagged=("flag", lambda f: int((f != "ok").sum())))
    lines = ["| long side (px) | films | Dice mean | min | < 0.85 | QC flagged |", "|---|---|---|---|---|---|"]
    lines += [f"| {size} | {r.films} | {r.dice_mean:.3f} | {r.dice_min:.3f} | {r.below_085} | {r.flagged} |"
              for size, r in summary.iterrows()]
    (out / "size.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(summary.to_string())


if __name__ == "__main__":
    main()
