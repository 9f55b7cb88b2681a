"""Level, power and CI coverage of `lungprior compare`'s default tests on simulated studies (docs/statistics.md).

Every simulated data set goes through the same functions as `compare_predictions` (`class_row` for each of
the five findings and No Finding, `macro_row` for the macro AUROC), testability rule included: a rate is the
share of *testable* rows whose p is below alpha. Data set i of a design uses the seed (seed, design, truth, i),
so any subset of the simulation can be recomputed on its own.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from lungprior.evaluate.clustered import obuchowski_test
from lungprior.evaluate.compare import choose_test, class_row, macro_row
from lungprior.evaluate.scores import DegenerateDataWarning, auroc, no_finding_score
from lungprior.evaluate.simulation import DESIGNS, Design, simulate_study

EFFECT = 1.0  # model a's extra signal under the alternative
SWEEP = Design("patients with the finding", 60, (1, 8), flip=0.0)
SWEEP_COUNTS = (2, 3, 4, 5, 6, 8, 10, 15)


def _rows(y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, alpha: float) -> list[dict]:
    """compare's rows for one simulated data set: five findings, No Finding, macro (with a 'kind' key)."""
    method = choose_test(groups)
    out = [{"kind": "class", **class_row(y[:, j], a[:, j], b[:, j], groups, method, 0, 0, alpha)}
           for j in range(y.shape[1])]
    nf = 1 - y.max(axis=1)
    out.append({"kind": "nf", **class_row(nf, no_finding_score(a), no_finding_score(b), groups, method, 0, 0,
                                          alpha)})
    out.append({"kind": "macro", **macro_row(y, a, b, groups, 0, 0, alpha)})
    return out


def true_difference(design: Design, films: int = 200_000, seed: int = 0) -> float:
    """Population AUROC(a) - AUROC(b) of a finding under the alternative (one simulated study of about
    `films` films)."""
    rng = np.random.default_rng([seed, 99])
    patients = int(films / np.mean(design.films))
    y, a, b, _ = simulate_study(rng, replace(design, patients=patients), effect=EFFECT)
    return float(np.mean([auroc(y[:, j], a[:, j]) - auroc(y[:, j], b[:, j]) for j in range(y.shape[1])]))


def design_rates(index: int, n_sims: int, n_alt: int, seed: int = 0, alpha: float = 0.05) -> dict:
    """Rejection rates (null and alternative), testable share and CI coverage of one design of `DESIGNS`."""
    design = DESIGNS[index]
    res = {}
    for truth, eff, n in (("null", 0.0, n_sims), ("alt", EFFECT, n_alt)):
        rows = []
        for i in range(n):
            rng = np.random.default_rng([seed, index, int(eff > 0), i])
            rows += _rows(*simulate_study(rng, design, effect=eff), alpha)
        res[truth] = pd.DataFrame(rows, columns=["kind", "p", "ci_low", "ci_high", "testable"]) if not rows \
            else pd.DataFrame(rows)
    null, alt = res["null"], res["alt"]
    truth = true_difference(design, seed=seed)
    out = {"design": design.name, "patients x films": design.shape}
    cls = null[null["kind"] == "class"]
    out["testable"] = float(cls["testable"].mean())
    for kind, label in (("class", "per class"), ("nf", "No Finding"), ("macro", "macro")):
        tested = null[(null["kind"] == kind) & null["testable"]]
        out[f"level {label}"] = float((tested["p"] < alpha).mean())
        out[f"n {label}"] = len(tested)
    alt_cls = alt[(alt["kind"] == "class") & alt["testable"]]
    out["power per class"] = float((alt_cls["p"] < alpha).mean())
    alt_macro = alt[(alt["kind"] == "macro") & alt["testable"]]
    out["power macro"] = float((alt_macro["p"] < alpha).mean())
    out["coverage per class"] = float(((alt_cls["ci_low"] <= truth) & (truth <= alt_cls["ci_high"])).mean())
    out["n alt"] = len(alt_cls)
    return out


def level_table(n_sims: int = 1000, n_alt: int = 400, seed: int = 0, designs: range | None = None) -> pd.DataFrame:
    """One row per design: testable share, level per class / No Finding / macro, power, coverage, counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        return pd.DataFrame([design_rates(i, n_sims, n_alt, seed) for i in designs or range(len(DESIGNS))])


def sweep_table(n_sims: int = 1000, seed: int = 0, counts: tuple[int, ...] = SWEEP_COUNTS,
                alpha: float = 0.05) -> pd.DataFrame:
    """Level of the default test (patient jackknife, t reference) and of Obuchowski's test with a normal
    reference when exactly k of 60 patients (1-8 films each) have the finding, testability rule switched off."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        for k in counts:
            hits_j = hits_o = 0
            for i in range(n_sims):
                rng = np.random.default_rng([seed, 1000 + k, i])
                y, a, b, g = simulate_study(rng, replace(SWEEP, positive_patients=k), n_classes=1)
                r = class_row(y[:, 0], a[:, 0], b[:, 0], g, "jackknife", 0, 0, alpha, min_patients=2)
                hits_j += bool(r["p"] < alpha)
                hits_o += bool(obuchowski_test(y[:, 0], a[:, 0], b[:, 0], g).p < alpha)
            rows.append({"patients with the finding": k, "default test": hits_j / n_sims,
                         "Obuchowski, normal": hits_o / n_sims})
    return pd.DataFrame(rows)


def smallest_safe(sweep: pd.DataFrame, level: float = 0.06) -> int:
    """The fewest patients from which on every count in the sweep keeps the default test's level ≤ `level`."""
    ok = sweep["default test"].to_numpy() <= level
    counts = sweep["patients with the finding"].to_numpy()
    safe = [int(c) for i, c in enumerate(counts) if ok[i:].all()]
    return min(safe) if safe else int(counts[-1]) + 1


def mc_se(rate: float, n: int) -> float:
    """Monte-Carlo standard error of a rejection rate from n data sets."""
    return math.sqrt(max(rate * (1 - rate), 0.05 * 0.95) / n) if n else math.nan


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """The table as Markdown (rates with `digits` decimals, counts as integers)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    floats = [pd.api.types.is_float_dtype(table[c]) for c in cols]
    for r in table.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if f else str(v) for v, f in zip(r, floats, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
