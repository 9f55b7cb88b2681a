"""Make the pictures of docs/phantom.md: `python scripts/make_phantom_figures.py [--out docs/img]`."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.data.phantom.gallery import write_gallery
from lungprior.data.phantom.plan import plan_benchmark
from lungprior.data.phantom.render import render_film
from lungprior.labels import FINDINGS


def _only(manifest: pd.DataFrame, label: str) -> str:
    others = [k for k in FINDINGS if k != label]
    if label == "No Finding":
        return manifest.loc[manifest[label] == 1, "image_id"].iloc[0]
    rows = manifest[(manifest[label] == 1) & (manifest[others].sum(axis=1) == 0)]
    return rows["image_id"].iloc[0]


def markers_figure(out: Path) -> None:
    plan = plan_benchmark(PhantomConfig(n=1, size=256, seed=5))[0]
    on = dataclasses.replace(plan, markers={k: 1 for k in FINDINGS})
    off = dataclasses.replace(plan, markers={k: 0 for k in FINDINGS})
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.3))
    for ax, p, title in zip(axes, (off, on), ("no markers", "all five markers"), strict=True):
        img, mask, _ = render_film(p, 256)
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.contour(mask >= 128, levels=[0.5], colors="#34c759", linewidths=0.8)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    notes = {"Mass": (12, 10), "Nodule": (200, 10), "Pneumonia": (8, 240), "Edema": (110, 252), "Fibrosis": (170, 40)}
    for k, (x, y) in notes.items():
        axes[1].annotate(k, (x, y), color="#ff9500", fontsize=7, ha="left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def acquisition_figure(out: Path) -> None:
    plans = [p for p in plan_benchmark(PhantomConfig(n=60, size=256, seed=11)) if p.patient_id == "P00000"]
    base = plans[0]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    rng = np.random.default_rng(0)
    from lungprior.data.phantom.acquisition import sample_acquisition

    for ax in axes:
        p = dataclasses.replace(base, acquisition=sample_acquisition(rng), noise_seed=int(rng.integers(1 << 30)))
        img, _, _ = render_film(p, 256)
        a = p.acquisition
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"rot {a.rotation_deg:+.1f}°  exp {a.exposure:.2f}  γ {a.gamma:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        generate_benchmark(PhantomConfig(n=400, size=256, seed=0, bias=0.9), tmp, progress=False)
        write_gallery(tmp, args.out / "phantom_gallery.png", n=12, seed=1, dpi=80)
        manifest = pd.read_csv(Path(tmp) / "manifest.csv")
        ids = [_only(manifest, k) for k in (*FINDINGS, "No Finding")]
        write_gallery(tmp, args.out / "phantom_findings.png", image_ids=ids, cols=3, dpi=80)
    markers_figure(args.out / "phantom_markers.png")
    acquisition_figure(args.out / "phantom_acquisition.png")
    for png in args.out.glob("phantom_*.png"):
        Image.open(png).convert("RGB").quantize(colors=128).save(png, optimize=True)
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
