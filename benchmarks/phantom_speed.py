"""Time the synthetic benchmark generator: `python benchmarks/phantom_speed.py [--n 2000] [--size 256]`.

Prints films/s and the wall time for the requested size (target: 2000 films at 256 px in <= 60 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from lungprior.data.phantom import PhantomConfig, generate_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="0: one per CPU core")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_benchmark(PhantomConfig(n=args.n, size=args.size, bias=0.9), tmp, workers=args.workers or None,
                           progress=False)
        wall = time.perf_counter() - start
    print(f"cores: {os.cpu_count()}  films: {args.n}  size: {args.size}px")
    print(f"wall: {wall:.1f} s  throughput: {args.n / wall:.1f} films/s  target (2000 @ 256 px <= 60 s): "
          f"{'met' if args.n >= 2000 and wall <= 60 else 'see numbers'}")


if __name__ == "__main__":
    main()
