"""Which per-class calibration, and from how many validation positives: held-out log-loss and ECE on simulated
scores (docs/calibration.md).

Each data set: a class with prevalence `prev`; latent x ~ N(d if positive else 0, 1); the model's raw score is
sigmoid(x * s + log(w)) (s: sharpness, w: odds inflation of class-weighted BCE). A validation split of `n_val`
films (with `n_pos` positives) fits the calibration; 5,000 test films from the same design score it. Methods:
raw, unpenalised Platt (the former default), monotone Platt (smoothed targets, slope >= 0.05, ridge 1 towards
slope 1), temperature (slope only) and isotonic regression. Also: how often the unpenalised slope is negative,
and the monotone fit's median |a - d/s| (d/s is the true slope of the design).

    nice python benchmarks/calibration_choice.py --reps 200
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from lungprior.evaluate.calibration import ece, fit_platt, logit, sigmoid

DESIGNS = [  # (name, n_pos in val, n_val, d, inflation w, sharpness s)
    ("weak signal, 2 pos", 2, 150, 0.5, 5.0, 1.0), ("weak signal, 3 pos", 3, 150, 0.5, 5.0, 1.0),
    ("weak signal, 5 pos", 5, 150, 0.5, 5.0, 1.0), ("weak signal, 10 pos", 10, 150, 0.5, 5.0, 1.0),
    ("weak signal, 30 pos", 30, 150, 0.5, 5.0, 1.0),
    ("good signal, 2 pos", 2, 150, 1.5, 5.0, 1.0), ("good signal, 3 pos", 3, 150, 1.5, 5.0, 1.0),
    ("good signal, 5 pos", 5, 150, 1.5, 5.0, 1.0), ("good signal, 10 pos", 10, 150, 1.5, 5.0, 1.0),
    ("good signal, 30 pos", 30, 150, 1.5, 5.0, 1.0),
    ("no signal, 5 pos", 5, 150, 0.0, 5.0, 1.0), ("no signal, 10 pos", 10, 150, 0.0, 5.0, 1.0),
    ("overconfident, 10 pos", 10, 150, 1.5, 5.0, 4.0), ("overconfident, 30 pos", 30, 150, 1.5, 5.0, 4.0),
]
METHODS = ("raw", "platt (unpenalised)", "platt (monotone)", "temperature", "isotonic")


def _draw(rng: np.random.Generator, n_pos: int, n: int, d: float, w: float, s: float) -> tuple:
    y = np.zeros(n, dtype=int)
    y[:n_pos] = 1
    x = rng.normal(0, 1, n) + d * y
    return y, sigmoid(s * x + np.log(w))


def _fit(method: str, y: np.ndarray, p: np.ndarray):
    if method == "raw":
        return lambda q: q, 1.0
    if method == "platt (unpenalised)":
        m = LogisticRegression(C=np.inf, max_iter=1000).fit(logit(p)[:, None], y)
        a, b = float(m.coef_[0, 0]), float(m.intercept_[0])
        return lambda q: sigmoid(a * logit(q) + b), a
    if method == "platt (monotone)":
        ab = fit_platt(y, p)
        return lambda q: sigmoid(ab["a"] * logit(q) + ab["b"]), ab["a"]
    if method == "temperature":
        grid = np.exp(np.linspace(-4, 3, 200))
        x = logit(p)
        nll = [-np.mean(y * np.log(sigmoid(a * x) + 1e-12) + (1 - y) * np.log(1 - sigmoid(a * x) + 1e-12))
               for a in grid]
        a = float(grid[int(np.argmin(nll))])
        return lambda q: sigmoid(a * logit(q)), a
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(p, y)
    return iso.predict, 1.0


def _logloss(y: np.ndarray, q: np.ndarray) -> float:
    q = np.clip(q, 1e-4, 1 - 1e-4)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| design | " + " | ".join(METHODS) + " | negative slopes (unpenalised) | slope error (monotone) |")
    print("|---|" + "---|" * (len(METHODS) + 2))
    for name, n_pos, n_val, d, w, s in DESIGNS:
        loss = {m: [] for m in METHODS}
        errs = {m: [] for m in METHODS}
        negative, slope_err = 0, []
        for _ in range(args.reps):
            yv, pv = _draw(rng, n_pos, n_val, d, w, s)
            yt, pt = _draw(rng, round(5000 * n_pos / n_val), 5000, d, w, s)
            for m in METHODS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f, slope = _fit(m, yv, pv)
                if m == "platt (unpenalised)":
                    negative += slope < 0
                if m == "platt (monotone)":
                    slope_err.append(abs(slope - d / s))
                q = f(pt)
                loss[m].append(_logloss(yt, q))
                errs[m].append(ece(yt, q))
        cells = [f"{np.mean(loss[m]):.3f} / {np.mean(errs[m]):.3f}" for m in METHODS]
        print(f"| {name} | " + " | ".join(cells) + f" | {negative / args.reps:.0%} | {np.median(slope_err):.2f} |")


if __name__ == "__main__":
    main()
