"""Training throughput: model only vs the cached input pipeline vs a naive per-item PNG loader.

    python benchmarks/train_throughput.py [--backbone resnet18] [--image-size 128] [--batch-size 32] [--steps 20]

Without --manifest, a small synthetic benchmark is generated in a temporary folder. Three numbers, all in
training images per second with the same training step (forward, weighted BCE, backward, AdamW step):
model only (random tensors), end to end (the cached memmap DataLoader, with augmentation), and a naive
loader that decodes, masks and resizes each PNG per item. Target: end to end >= 0.9 x model only.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset

from lungprior.classify import TrainConfig, create_backbone, make_dataset, prepare
from lungprior.classify.cache import ItemSource, item_sources, render_item
from lungprior.classify.data import augmentation, split_positions
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.labels import FINDINGS
from lungprior.masks import MaskSpec


class NaiveDataset(Dataset):
    """Decode + mask + resize each PNG on every access (what the cache avoids)."""

    def __init__(
        self, sources: list[ItemSource], labels: torch.Tensor, size: int, spec: MaskSpec, mean: float, std: float
    ) -> None:
        self.sources, self.labels, self.size, self.spec = sources, labels, size, spec
        self.mean, self.std, self.transform = mean, std, augmentation()

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, _ = render_item(self.sources[i], self.size, self.spec)
        x = self.transform(torch.from_numpy(image).float().div(255.0).unsqueeze(0))
        return (x - self.mean) / self.std, self.labels[i], i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2, help="Untimed steps per pipeline before timing.")
    ap.add_argument("--rounds", type=int, default=4, help="Interleaved timing rounds (median reported).")
    ap.add_argument("--mode", default="tight", help="Mask mode of the pipelines.")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for both loaders.")
    ap.add_argument("--manifest", type=Path, default=None, help="Use this manifest instead of a generated one.")
    ap.add_argument("--phantom-n", type=int, default=200)
    ap.add_argument("--phantom-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default).")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="lungprior-bench-") as tmp:
        manifest = args.manifest
        if manifest is None:
            generate_benchmark(PhantomConfig(n=args.phantom_n, size=args.phantom_size, seed=0), tmp, progress=False)
            manifest = Path(tmp) / "manifest.csv"
        run(args, manifest, Path(tmp) / "cache")


def run(args: argparse.Namespace, manifest: Path, cache: Path) -> None:
    cfg = TrainConfig(
        manifest=str(manifest), out=str(cache / "unused-run"), mode=args.mode, backbone=args.backbone,
        image_size=args.image_size, batch_size=args.batch_size, workers=args.workers, cache=str(cache),
    ).resolved()
    t0 = time.perf_counter()
    prep = prepare(cfg, progress=False)
    cache_s = time.perf_counter() - t0
    cached = make_dataset(cfg, "train", train=True, prepared=prep)
    rows = split_positions(prep.frame, "train")
    every = item_sources(prep.frame, cfg.masks, cfg.mask_spec())
    sources = [every[r] for r in rows]
    naive = NaiveDataset(
        sources, torch.from_numpy(cached.labels), cfg.image_size, cfg.mask_spec(), cached.mean, cached.std
    )
    torch.manual_seed(0)
    model, _ = create_backbone(cfg.backbone)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    criterion = torch.nn.BCEWithLogitsLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()

    b, s = args.batch_size, cfg.image_size
    random_batch = (torch.randn(b, 1, s, s), torch.randint(0, 2, (b, len(FINDINGS))).float())
    feeds = {
        "model only": iter(itertools.repeat(random_batch)),
        "end to end (cache)": batches(cached, args),
        "naive PNG loader": batches(naive, args),
    }
    for feed in feeds.values():  # warm-up: first steps build kernels, workers start
        for _ in range(args.warmup):
            step(*next(feed))
    # Interleaved rounds, median per pipeline: a busy shared machine drifts less between pipelines.
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    waits: dict[str, list[float]] = {name: [] for name in feeds}
    per_round = max(1, args.steps // args.rounds)
    for r in range(args.rounds):
        names = list(feeds)[r % 3 :] + list(feeds)[: r % 3]
        for name in names:
            rate, wait = measure(step, feeds[name], per_round)
            rates[name].append(rate)
            waits[name].append(wait)
    ips = {name: statistics.median(v) for name, v in rates.items()}
    wait_share = {name: statistics.median(v) for name, v in waits.items()}
    load_ips = {"end to end (cache)": loader_only(cached, args), "naive PNG loader": loader_only(naive, args)}

    table = Table(title=f"{cfg.backbone} @ {s}px, batch {b}, {per_round * args.rounds} steps each, "
                  f"{torch.get_num_threads()} threads, {args.workers} workers")
    table.add_column("pipeline")
    table.add_column("train images/s", justify="right")
    table.add_column("x model only", justify="right")
    table.add_column("time waiting for data", justify="right")
    table.add_column("loader alone images/s", justify="right")
    for name, value in ips.items():
        loader = f"{load_ips[name]:.0f}" if name in load_ips else "-"
        share = f"{100 * wait_share[name]:.1f} %"
        table.add_row(name, f"{value:.1f}", f"{value / ips['model only']:.3f}", share, loader)
    console = Console()
    console.print(table)
    console.print(f"cache build: {cache_s:.1f} s for {prep.cache.n} images ({cfg.mask_spec().key()})")
    console.print(f"end-to-end / model-only = {ips['end to end (cache)'] / ips['model only']:.3f} (target >= 0.9)")
    console.print(f"naive / model-only = {ips['naive PNG loader'] / ips['model only']:.3f}")
    console.print(
        "on a busy machine the rates drift between pipelines; 1 - (time waiting for data) is the drift-free "
        f"estimate of the ratio: end to end {1 - wait_share['end to end (cache)']:.3f}, "
        f"naive {1 - wait_share['naive PNG loader']:.3f}"
    )


def loader_only(ds: Dataset, args: argparse.Namespace, n_batches: int = 4) -> float:
    """Images per second of the DataLoader alone (no training step)."""
    it = batches(ds, args)
    next(it)
    start, images = time.perf_counter(), 0
    for _ in range(n_batches):
        images += len(next(it)[0])
    return images / (time.perf_counter() - start)


def batches(ds: Dataset, args: argparse.Namespace) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches from a shuffled, drop-last DataLoader over `ds`, cycling over epochs."""
    loader = DataLoader(
        ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    while True:
        for x, y, _ in loader:
            yield x, y


def measure(step: Callable[[torch.Tensor, torch.Tensor], None], feed: Iterator, steps: int) -> tuple[float, float]:
    """Images per second of `step` fed by `feed` (loading included) and the fraction of time spent loading."""
    images, waiting = 0, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        x, y = next(feed)
        waiting += time.perf_counter() - t
        step(x, y)
        images += len(x)
    total = time.perf_counter() - start
    return images / total, waiting / total


if __name__ == "__main__":
    main()
