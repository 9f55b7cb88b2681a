"""Time the paired patient bootstrap against a plain loop over scikit-learn AUROCs: same data, as many resamples.

`python benchmarks/bootstrap_speed.py [--n 2000] [--patients 800] [--resamples 1000]` prints both CPU times, their
ratio and both 95 % intervals (independent draws, so close but not equal).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from lungprior.evaluate.bootstrap import paired_bootstrap_diff


def _data(n: int, patients: int, k: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    y = (rng.random((n, k)) < 0.2).astype(int)
    a = y * 0.8 + rng.normal(0, 0.5, (n, k))
    b = y * 0.6 + rng.normal(0, 0.5, (n, k))
    return y, a, b, rng.integers(0, patients, n)


def _loop(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_resamples: int) -> np.ndarray:
    """The obvious implementation: draw patients, gather their films, call roc_auc_score per class."""
    rng = np.random.default_rng(1)
    ids = np.unique(groups)
    films = [np.flatnonzero(groups == g) for g in ids]
    out = []
    for _ in range(n_resamples):
        idx = np.concatenate([films[i] for i in rng.integers(0, len(ids), len(ids))])
        cols = range(y.shape[1])
        if any(y[idx, c].min() == y[idx, c].max() for c in cols):
            continue
        out.append(np.mean([roc_auc_score(y[idx, c], a[idx, c]) - roc_auc_score(y[idx, c], b[idx, c])
                            for c in cols]))
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    y, a, b, groups = _data(args.n, args.patients)
    start = time.process_time()
    fast = paired_bootstrap_diff(y, a, b, groups, n_resamples=args.resamples, seed=0)
    t_fast = time.process_time() - start
    start = time.process_time()
    slow = _loop(y, a, b, groups, args.resamples)
    t_slow = time.process_time() - start
    print(f"{args.n} films, {args.patients} patients, 5 classes, {args.resamples} resamples (CPU seconds)")
    print(f"lungprior paired_bootstrap_diff: {t_fast:.2f} s   sklearn loop: {t_slow:.2f} s   "
          f"ratio {t_slow / t_fast:.1f}x")
    print(f"95% interval: lungprior [{fast['low']:+.4f}, {fast['high']:+.4f}]   loop "
          f"[{np.quantile(slow, 0.025):+.4f}, {np.quantile(slow, 0.975):+.4f}] (different random draws)")


if __name__ == "__main__":
    main()
