"""Agreement of two human lung annotations of the same films: the ceiling for a model judged against one.

    python benchmarks/human_agreement.py --data SEGDATA [--zip semantic_masks_v7labs_lungs.zip] --out DIR

SEGDATA is a segdata folder built with `lungprior segdata --structure-csv` (its masks are annotator A); the
zip holds annotator B's full-size masks named after the films (torchxrayvision ships one; grey 127 there
means "not annotated" and is ignored). A B mask at another resolution is resized to the film's (nearest).
Empty B masks are skipped. Scores use `lungprior.segment.segeval.film_metrics` (as `lungprior segeval`).
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from lungprior.data.atomic import write_json
from lungprior.data.ignore import read_mask_ignore, split_ignore
from lungprior.data.manifest import read_seg_manifest, resolve
from lungprior.segment.segeval import FILM_COLUMNS, summarise


def default_zip() -> Path | None:
    try:
        import torchxrayvision
    except ImportError:
        return None
    path = Path(torchxrayvision.__file__).parent / "data" / "semantic_masks_v7labs_lungs.zip"
    return path if path.is_file() else None


def main() -> None:
    from lungprior.segment.segeval import film_metrics

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--zip", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    zpath = Path(args.zip) if args.zip else default_zip()
    if zpath is None or not zpath.is_file():
        raise SystemExit("no annotation zip: install torchxrayvision or give --zip")
    df = read_seg_manifest(Path(args.data) / "manifest.csv")
    archive = zipfile.ZipFile(zpath)
    by_stem = {Path(n).stem.lower(): n for n in archive.namelist() if not n.endswith("/")}
    rows, resized, empty = [], 0, 0
    for _, r in df.iterrows():
        name = by_stem.get(str(r["image_id"]).lower())
        if name is None:
            continue
        raw = np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("L"))
        truth, ignore_a = read_mask_ignore(resolve(df, r["mask_path"]))
        if raw.shape != truth.shape:
            raw = cv2.resize(raw, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
            resized += 1
        other, ignore_b = split_ignore(raw)
        if not other.any():
            empty += 1
            continue
        m = film_metrics(other, truth, ignore_a | ignore_b, r.get("pixel_spacing_mm"))
        rows.append({"image_id": r["image_id"], "view": r.get("view", ""), **m, "qc_flag": "", "qc_reason": ""})
    films = pd.DataFrame(rows, columns=list(FILM_COLUMNS))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    films.to_csv(out / "films.csv", index=False, float_format="%.6f")
    summary = {"zip": str(zpath), "films_compared": len(films), "resized": resized, "empty_skipped": empty,
               **summarise(films)}
    write_json(out / "summary.json", summary)
    s = summary["all"]
    print(f"films compared: {len(films)} (B resized: {resized}, B empty skipped: {empty})")
    print(f"Dice mean {s['dice']['mean']:.4f} median {s['dice']['median']:.4f} p10 {s['dice']['p10']:.4f} "
          f"min {s['dice']['min']:.4f}; HD95 mean {s['hd95']['mean']:.1f} median {s['hd95']['median']:.1f} "
          f"({', '.join(summary['units'])})")


if __name__ == "__main__":
    main()
