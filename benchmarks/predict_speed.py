"""End-to-end speed of `lungprior predict` on the CPU at NIH size: `python benchmarks/predict_speed.py [--n 6]`.

Films: synthetic 1024 x 1024 8-bit PNGs (the size and format of NIH ChestX-ray14). The run: a densenet121 at
224 px with a tight mask (random weights: speed does not depend on them) and LiteMedSAM segmentation, written
as a run folder. Prints films/s (model loading excluded, and included) and the share of the time per film spent
decoding, segmenting (encoder + prompt cascade + QC + writing the mask), classifying (input rendering +
network), Grad-CAM and drawing the picture, for each classifier engine. The ONNX exports happen before timing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lungprior.classify.backbone import create_backbone
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.layout import SEGMENTATION
from lungprior.predict import predict_films
from lungprior.segment.weights import LITEMEDSAM_SHA256


def make_run(root: Path, backbone: str, size: int) -> Path:
    run = root / "run"
    run.mkdir()
    model, _ = create_backbone(backbone, "none", size)
    torch.save(model.state_dict(), run / "model.pt")
    cfg = {"manifest": str(root / "bench" / "manifest.csv"), "out": str(run), "mode": "tight",
           "backbone": backbone, "image_size": size}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / SEGMENTATION).write_text(json.dumps({"source": "model", "backend": "litemedsam",
                                                "weights_sha256": LITEMEDSAM_SHA256, "prompt": "auto"}))
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--backbone", default="densenet121")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: PyTorch classifier + segmentation on the GPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_benchmark(PhantomConfig(n=max(args.n, 20), size=1024, seed=0), root / "bench", workers=1,
                           progress=False)
        films = root / "films"
        films.mkdir()
        for p in sorted((root / "bench" / "images").glob("*.png"))[: args.n]:
            Image.fromarray(np.asarray(Image.open(p).convert("L"))).save(films / p.name)  # 8-bit, as NIH
        run = make_run(root, args.backbone, args.image_size)
        warm = films / "warm"
        warm.mkdir()
        Image.open(next(films.glob("*.png"))).save(warm / "w.png")
        cuda = args.device.startswith("cuda")
        engines = (("torch", True), ("torch", False)) if cuda else (("torch", True), ("onnx", False))
        for engine in {e for e, _ in engines}:  # exports, caches and CUDA warm-up outside the clock
            predict_films(run, [warm], root / f"warm-{engine}", engine=engine, device=args.device,
                          seg_engine="torch" if cuda else "auto")
        print(f"{args.n} films, 1024 px PNG, {args.backbone} {args.image_size} px tight, LiteMedSAM auto, "
              f"torch threads {torch.get_num_threads()}")
        for engine, cam in engines:
            out = root / f"out-{engine}-{cam}"
            (out / "onnx").mkdir(parents=True)
            for f in (root / f"warm-{engine}" / "onnx").glob("*"):
                (out / "onnx" / f.name).write_bytes(f.read_bytes())
            start = time.perf_counter()
            r = predict_films(run, [p for p in films.glob("*.png")], out, engine=engine, cam=cam, page=True,
                              device=args.device, seg_engine="torch" if cuda else "auto")
            wall = time.perf_counter() - start
            s = r.seconds
            work = sum(s[k] for k in ("decode", "segment", "classify", "cam", "figure"))
            shares = "  ".join(f"{k} {100 * s[k] / work:.0f} %" for k in ("decode", "segment", "classify", "cam",
                                                                          "figure"))
            print(f"{args.device} engine {engine:5s} cam {'on ' if cam else 'off'}: {r.processed / work:.3f} films/s "
                  f"({r.processed / wall:.3f} with model loading and the page); {shares}")


if __name__ == "__main__":
    main()
