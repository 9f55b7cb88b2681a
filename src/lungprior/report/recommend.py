"""Which prior to use for each finding and for No Finding, and the best loose radius per finding.

For one backbone, every prior's test predictions (all seeds) are scored on the same patient-clustered
bootstrap resamples of the test split: a prior's AUROC in a resample is its mean over seeds. The recommended
prior is the one with the highest AUROC on the full test split; the evidence is its AUROC with a 95%
percentile CI, the runner-up, and how often it wins across resamples. The `nolung` control is never
recommended, nor an input whose AUROC is at or below chance (0.5). Every prior's No Finding score comes from its
calibrated probabilities. The "vs original" column is the report's claim from comparisons.csv (adjusted p).
The best radius is the same choice among tight (0 mm), loose (r mm) and original (no mask),
with a 95% interval of the winning radius over the resamples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lungprior.evaluate.bootstrap import cluster_weights, weighted_auroc
from lungprior.evaluate.calibration import apply_calibration, read_calibration
from lungprior.evaluate.metrics import score_matrix
from lungprior.evaluate.scores import no_finding_score
from lungprior.labels import FINDINGS, NO_FINDING
from lungprior.layout import PREDICTIONS, score_column
from lungprior.masks.spec import CONTROL_MODES
from lungprior.report import claims
from lungprior.report.findings import seed_marker

RADIUS_CANDIDATES = ("tight", "loose", "original")  # the "best radius" choice: 0 mm, r mm, the whole film
CHANCE = 0.5
NONE = "none (no input above chance)"


def calibrated_predictions(run: dict[str, Any]) -> pd.DataFrame:
    """A run's test predictions by image, calibrated with its `calibration.json` (as every other No Finding score)."""
    df = pd.read_csv(Path(run["run_dir"]) / PREDICTIONS, dtype={"image_id": str, "patient_id": str})
    calib = read_calibration(run["run_dir"])
    df = apply_calibration(df, calib) if calib is not None else df
    return df.sort_values("image_id").reset_index(drop=True)


def _radius(run: dict[str, Any]) -> float:
    return {"tight": 0.0, "original": math.inf}.get(run["mode"], float(run.get("radius_mm") or math.nan))


def _scores(df: pd.DataFrame, target: str, no_finding: str) -> tuple[np.ndarray, np.ndarray]:
    if target == NO_FINDING:
        return df[NO_FINDING].to_numpy(), no_finding_score(score_matrix(df), no_finding)
    return df[target].to_numpy(), df[score_column(target)].to_numpy()


def choose(runs: list[dict[str, Any]], *, modes: tuple[str, ...] | None = None, n_resamples: int = 500,
           seed: int = 0, no_finding: str = "max") -> pd.DataFrame:
    """Per backbone and target (five findings, No Finding): the best prior among `runs` and its evidence.

    `modes` restricts the candidates (default: every prior but the controls). Columns: backbone, target,
    best, auroc, ci_low, ci_high, runner_up, runner_up_auroc, win_share (share of resamples it wins),
    radius_mm / radius_low / radius_high (the winner's radius and its 95% interval; inf = original).
    """
    rows = []
    for backbone in dict.fromkeys(r["backbone"] for r in runs):
        chosen = [r for r in runs if r["backbone"] == backbone and r["mode"] not in CONTROL_MODES
                  and (modes is None or r["mode"] in modes)]
        priors = list(dict.fromkeys(r["mask"] for r in chosen))
        if len(priors) < 2:
            continue
        preds = {id(r): calibrated_predictions(r) for r in chosen}
        first = preds[id(chosen[0])]
        if any(not df["image_id"].equals(first["image_id"]) for df in preds.values()):
            continue  # not the same test images: no paired choice
        weights = cluster_weights(first["patient_id"].to_numpy(), n_resamples, seed)
        radius = {r["mask"]: _radius(r) for r in chosen}
        for target in (*FINDINGS, NO_FINDING):
            point, boot = [], []
            for prior in priors:
                per_seed = [(_scores(preds[id(r)], target, no_finding)) for r in chosen if r["mask"] == prior]
                if any(y.min() == y.max() for y, _ in per_seed):
                    break
                point.append(np.mean([weighted_auroc(y, s, np.ones((1, len(y))))[0] for y, s in per_seed]))
                with warnings.catch_warnings():  # a resample without positives of the target: NaN, skipped
                    warnings.simplefilter("ignore", RuntimeWarning)
                    boot.append(np.nanmean([weighted_auroc(y, s, weights) for y, s in per_seed], axis=0))
            if len(point) < len(priors):
                continue
            order = np.argsort(point)[::-1]
            if point[int(order[0])] <= CHANCE:  # no input beats chance: nothing to recommend
                rows.append({"backbone": backbone, "target": target, "best": NONE, "auroc": point[int(order[0])]})
                continue
            b = np.array(boot)  # (priors, resamples)
            winners = np.nanargmax(np.where(np.isnan(b), -np.inf, b), axis=0)
            best = int(order[0])
            radii = np.array([radius[priors[k]] for k in winners])
            finite = radii[~np.isnan(radii)]
            rows.append({
                "backbone": backbone, "target": target, "best": priors[best], "auroc": point[best],
                "ci_low": float(np.nanpercentile(b[best], 2.5)), "ci_high": float(np.nanpercentile(b[best], 97.5)),
                "runner_up": priors[int(order[1])], "runner_up_auroc": point[int(order[1])],
                "win_share": float(np.mean(winners == best)), "radius_mm": radius[priors[best]],
                "radius_low": float(np.percentile(finite, 2.5, method="lower")) if finite.size else math.nan,
                "radius_high": float(np.percentile(finite, 97.5, method="higher")) if finite.size else math.nan,
            })
    return pd.DataFrame(rows)


def _radius_text(r: float) -> str:
    return "original" if math.isinf(r) else ("tight" if r == 0 else f"{r:g} mm")


def _versus_original(rec: pd.DataFrame, comparisons: pd.DataFrame | None) -> list[str]:
    """Per recommendation, the comparison of that prior with the original films as the report states it."""
    out = []
    for _, r in rec.iterrows():
        if comparisons is None or comparisons.empty or r["best"] in ("original", NONE):
            out.append("")
            continue
        rows = comparisons[(comparisons["backbone"] == r["backbone"]) & (comparisons["mask"] == r["best"])
                           & (comparisons["target"] == r["target"])]
        marker, _ = seed_marker(rows, r["target"]) if not rows.empty else ("", False)
        if marker == "not testable":
            marker += f" ({claims.short_note(rows['note'].iloc[0])})"
        elif len(rows) == 1 and marker:
            marker = f"{marker}, {claims.p_text(rows.iloc[0])}"
        out.append(marker)
    return out


def recommendation_section(runs: list[dict[str, Any]], no_finding: str, table: Callable[[pd.DataFrame], str],
                           *, n_resamples: int = 500, comparisons: pd.DataFrame | None = None) -> str:
    """HTML: the recommended prior per finding and for No Finding, and the best radius per finding."""
    parts = []
    rec = choose(runs, n_resamples=n_resamples, no_finding=no_finding)
    if not rec.empty:
        comparisons = claims.prepare(comparisons) if comparisons is not None else None
        shown = rec.drop(columns=["radius_mm", "radius_low", "radius_high"], errors="ignore")
        shown.insert(3, "vs original (adjusted p)", _versus_original(rec, comparisons))
        parts.append("<h2>Which prior for which finding</h2><p class='note'>Highest test AUROC (mean over seeds), "
                     "never an input at or below chance; CI and win share from one patient-clustered bootstrap "
                     "shared by all priors; the nolung control is never recommended. No Finding from calibrated "
                     "probabilities. vs original: the per-seed comparison with the original films (↑k/n: higher "
                     "in k of n seeds, sig.: adjusted p &lt; 0.05), the same claim as the AUROC table; a highest "
                     "AUROC without a significant comparison is not evidence that the prior helps.</p>"
                     + table(shown))
    radius = choose(runs, modes=RADIUS_CANDIDATES, n_resamples=n_resamples, no_finding=no_finding)
    radius = radius[radius["best"] != NONE] if not radius.empty else radius
    if not radius.empty:
        shown = radius.assign(radius=[_radius_text(r) for r in radius["radius_mm"]],
                              interval=[f"{_radius_text(lo)} to {_radius_text(hi)}" for lo, hi in
                                        zip(radius["radius_low"], radius["radius_high"], strict=True)])
        parts.append("<h2>Best radius per finding</h2><p class='note'>Among tight, loose and original; the "
                     "interval is the 95% range of the winning radius over the bootstrap resamples.</p>"
                     + table(shown[["backbone", "target", "radius", "interval", "auroc", "ci_low", "ci_high",
                                    "win_share"]]))
    return "".join(parts)
