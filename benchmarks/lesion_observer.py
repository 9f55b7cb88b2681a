"""A reference observer: how much of each finding is in a benchmark's pixels at a given input size.

    python benchmarks/lesion_observer.py BENCH [--sizes 64 96 128 192] [--out DIR]

BENCH is a folder written by `lungprior phantom` (or an experiment's `data/benchmark`). Every film is resized
to each input size by the classifier cache's own resize (bilinear, antialiased), and described by 40 numbers: at 8
blob scales (difference of Gaussians, sigma 1.8 to 22 mm), the largest, third and tenth largest response, the
mean and the SD inside the ground-truth lungs (eroded by one pixel). A logistic regression per finding is fitted
on the train and val films and scored on the test films (AUROC with a patient-clustered bootstrap interval).

It is not a classifier to use: it is a floor on what a learner could get from the films at that size, with no
training budget to speak of. A finding this observer detects and a CNN does not is a learning problem (data
size, architecture), not a resolution problem. Prints a table and writes `observer.csv` in DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import binary_erosion, gaussian_filter
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lungprior.classify.cache import _resize as resize  # the classifier cache's own resize: same pixels
from lungprior.data.phantom.config import FIELD_OF_VIEW_MM
from lungprior.evaluate.bootstrap import bootstrap_metric_ci
from lungprior.labels import FINDINGS

SIGMAS_MM = (1.8, 2.7, 3.6, 5.5, 7.3, 11.0, 14.6, 21.9)  # 0.5-6 px at 96 px over a 350 mm film


def film_features(image: np.ndarray, lungs: np.ndarray, size: int) -> np.ndarray:
    """The 40 blob statistics of one film (image in [0, 1], lungs bool) at `size` pixels."""
    img = resize(image, size)
    inside = binary_erosion(resize(lungs.astype(np.float32), size) >= 0.5, iterations=1)
    if inside.sum() < 10:
        raise ValueError("fewer than 10 lung pixels after resizing")
    px_mm = FIELD_OF_VIEW_MM / size
    out = []
    for s_mm in SIGMAS_MM:
        s = s_mm / px_mm
        dog = gaussian_filter(img, s) - gaussian_filter(img, 3 * s)
        v = np.sort(dog[inside])
        out += [v[-1], v[-3], v[-10], v.mean(), v.std()]
    return np.asarray(out, dtype=np.float64)


def observe(bench: Path, sizes: list[int], n_boot: int = 1000) -> pd.DataFrame:
    """Test AUROC (patient-clustered 95% CI) of the observer, per finding and input size."""
    manifest = pd.read_csv(bench / "manifest.csv")
    films = []
    for row in manifest.itertuples():
        image = np.asarray(Image.open(bench / row.path).convert("L"), dtype=np.float32) / 255.0
        lungs = np.asarray(Image.open(bench / "masks" / f"{row.image_id}.png")) > 0
        films.append((image, lungs))
    fit = (manifest["split"] != "test").to_numpy()
    test = ~fit
    rows = []
    for size in sizes:
        x = np.stack([film_features(image, lungs, size) for image, lungs in films])
        for finding in FINDINGS:
            y = manifest[finding].to_numpy()
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
            model.fit(x[fit], y[fit])
            score = model.predict_proba(x[test])[:, 1]
            auroc, low, high = bootstrap_metric_ci(y[test], score, manifest.loc[test, "patient_id"].to_numpy(),
                                                   n_resamples=n_boot)
            rows.append({"size": size, "finding": finding, "auroc": auroc, "ci_low": low, "ci_high": high,
                         "n_fit": int(fit.sum()), "n_test": int(test.sum())})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path, help="benchmark folder (manifest.csv, images/, masks/)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 192])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None, help="folder for observer.csv (default: BENCH)")
    args = ap.parse_args()
    table = observe(args.bench, args.sizes, args.bootstrap)
    out = args.out or args.bench
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "observer.csv", index=False)
    wide = table.assign(cell=[f"{a:.3f} [{lo:.2f}, {hi:.2f}]" for a, lo, hi in
                              table[["auroc", "ci_low", "ci_high"]].itertuples(index=False)])
    print(wide.pivot(index="finding", columns="size", values="cell").loc[list(FINDINGS)].to_string())
    print(f"fitted on {table['n_fit'].iloc[0]} train+val films, scored on {table['n_test'].iloc[0]} test films; "
          f"{out / 'observer.csv'}")


if __name__ == "__main__":
    main()
