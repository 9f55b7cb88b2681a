"""Time `lungprior --help`: `python benchmarks/cli_startup.py [--runs 7]`.

Prints the median wall time of `python -m lungprior --help` over several runs and, as a ratio, the median of
`python -c pass` on the same machine (the interpreter's own start-up). Target: --help under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: The source tree beside this script, so that it times this checkout's package.
_SRC = str(Path(__file__).resolve().parents[1] / "src")


def median_wall(args: list[str], runs: int) -> float:
    """Median wall time in seconds of running `python ARGS` `runs` times (after one untimed warm-up run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_SRC, os.environ.get("PYTHONPATH")]))}
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        if i:  # the first run warms the file cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    bare = median_wall(["-c", "pass"], args.runs)
    helped = median_wall(["-m", "lungprior", "--help"], args.runs)
    print(f"cores: {os.cpu_count()}  runs: {args.runs}  python: {sys.version.split()[0]}")
    print(f"lungprior --help: {helped:.3f} s (median)  python -c pass: {bare:.3f} s  ratio: {helped / bare:.1f}x  "
          f"target (< 1 s): {'met' if helped < 1 else 'missed'}")


if __name__ == "__main__":
    main()
