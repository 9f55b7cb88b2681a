"""The findings sentences name the best mask per backbone and state per-seed significance with its direction."""

from __future__ import annotations

import pandas as pd
import pytest

from lungprior.report.claims import prepare
from lungprior.report.findings import findings_sentences, seed_marker, seed_verdict

TEST = "Obuchowski clustered DeLong (paired; patients as clusters)"


def _results(seeds: list[int]) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for mask, macro, nf in (("original", 0.70, 0.60), ("tight", 0.80, 0.55)):
            rows += [{"backbone": "resnet18", "mask": mask, "seed": seed, "class": "macro", "auroc": macro},
                     {"backbone": "resnet18", "mask": mask, "seed": seed, "class": "No Finding", "auroc": nf}]
    return pd.DataFrame(rows)


def _comparisons(ps: list[float], diffs: list[float] | None = None, floor: float = 0.002) -> pd.DataFrame:
    rows = []
    for seed, p in enumerate(ps):
        d = diffs[seed] if diffs else 0.1
        rows += [{"backbone": "resnet18", "seed": seed, "mask": "tight", "target": "macro AUROC", "diff": d, "p": p,
                  "p_holm": float("nan"), "ci_low": d - 0.05, "ci_high": d + 0.05, "p_floor": floor,
                  "test": "paired patient bootstrap (1000)"},
                 {"backbone": "resnet18", "seed": seed, "mask": "tight", "target": "No Finding", "diff": -0.05,
                  "p": 0.01, "p_holm": 0.9, "ci_low": -0.1, "ci_high": 0.0, "p_floor": 0.0,
                  "test": f"{TEST}, score max of calibrated probabilities"}]
    return pd.DataFrame(rows)


def test_one_seed_states_its_p_value_interval_and_direction() -> None:
    sentences = findings_sentences(_results([0]), _comparisons([0.01]))
    assert "highest mean test AUROC is <b>tight</b> (0.800 vs 0.700 on original images" in sentences[0]
    assert ("significantly higher than the original images (Holm-adjusted paired patient bootstrap p = 0.01, "
            "difference +0.100, 95% CI +0.050 to +0.150)") in sentences[0]
    assert "No Finding discrimination the input with the highest mean test AUROC is <b>original</b> (0.600)" \
        in sentences[0]
    assert "not adjusted for that choice" in sentences[-1]
    (floor,) = findings_sentences(_results([0]), _comparisons([0.002]))[:1]
    assert "bootstrap p ≤ 0.002, difference" in floor


def test_several_seeds_count_direction_and_significance_per_seed() -> None:
    (mixed, _) = findings_sentences(_results([0, 1, 2]), _comparisons([0.01, 0.2, 0.001]))
    assert "higher than the original images in 3/3 seeds, significantly in 2/3" in mixed
    assert "mean test AUROC over 3 seeds" in mixed
    # a significant result in the other direction is neither hidden nor counted for the main one
    (opposite, _) = findings_sentences(_results([0, 1, 2]), _comparisons([0.01, 0.01, 0.3], [0.1, -0.1, 0.05]))
    assert "higher than the original images in 2/3 seeds, significantly in 1/3 and significantly lower in 1/3" \
        in opposite


def test_holm_column_decides_per_class_and_marker() -> None:
    rows = prepare(_comparisons([0.01, 0.01, 0.01]))
    nf = rows[rows["target"] == "No Finding"]
    text = seed_verdict(nf, "No Finding")  # raw p 0.01 but Holm 0.9: not significant
    assert text.startswith("lower than the original images in 3/3 seeds, significantly in 0/3")
    assert f"Holm-adjusted p, {TEST}" in text
    assert seed_marker(nf, "No Finding") == ("↓3/3 (sig. 0)", False)
    macro = rows[rows["target"] == "macro AUROC"]
    assert seed_marker(macro, "macro AUROC") == ("↑3/3 (sig. 3)", True)


def test_auroc_table_labels_intervals_and_marks_per_seed() -> None:
    from lungprior.report.html import _auroc_note, _auroc_table

    results = _results([0, 1, 2]).assign(ci_low=0.5, ci_high=0.9)
    results.loc[(results["mask"] == "tight") & (results["class"] == "macro"), "auroc"] = [0.78, 0.80, 0.85]
    page = _auroc_table(results, _comparisons([0.01, 0.2, 0.001]))
    assert "0.810 (0.780–0.850) ↑3/3 (sig. 2)" in page  # a range over seeds, not an averaged "95% CI"
    assert "[0.500, 0.900]" not in page
    one = _auroc_table(_results([0]).assign(ci_low=0.6, ci_high=0.95), _comparisons([0.01]))
    assert '<span class="sig">0.800 [0.600, 0.950] ↑1/1 (sig. 1)</span>' in one
    note = _auroc_note(results, _comparisons([0.01]))
    assert "not a confidence interval" in note and "Holm-adjusted Obuchowski clustered DeLong" in note


def test_calibration_table_reads_each_runs_metrics(tmp_path) -> None:
    import json

    from lungprior.labels import FINDINGS
    from lungprior.report.html import calibration_table

    runs = []
    for seed in (0, 1):
        run_dir = tmp_path / f"tight{seed}"
        run_dir.mkdir()
        per = {k: {"ece": 0.1 * (seed + 1), "brier": 0.2} for k in FINDINGS}
        cal = {k: {"ece": 0.02, "brier": 0.15} for k in FINDINGS}
        (run_dir / "metrics.json").write_text(json.dumps({
            "calibration": {"raw": per, "calibrated": cal},
            "no_finding": {"auroc": {"estimate": 0.8 + seed / 100}, "auroc_uncalibrated": 0.75}}))
        runs.append({"backbone": "resnet18", "mask": "tight", "seed": seed, "run_dir": str(run_dir)})
    runs.append({"backbone": "resnet18", "mask": "old", "seed": 0, "run_dir": str(tmp_path / "missing")})
    table = calibration_table(runs)
    assert len(table) == 2
    row = table.iloc[1]
    assert row["No Finding AUROC (calibrated)"] == 0.81 and row["No Finding AUROC (raw)"] == 0.75
    assert row["mean ECE raw"] == pytest.approx(0.2) and row["mean ECE calibrated"] == pytest.approx(0.02)
    assert row["mean Brier raw"] == pytest.approx(0.2)


def test_the_nolung_control_is_never_named_the_best_input() -> None:
    """A lungs-removed control that scores highest (shortcuts outside the lungs) is not the recommended input."""
    results = _results([0]).assign(mode=lambda d: d["mask"])
    control = results[results["mask"] == "tight"].assign(mask="nolung", mode="nolung", auroc=0.95)
    sentences = findings_sentences(pd.concat([results, control], ignore_index=True), _comparisons([0.01]))
    assert "highest mean test AUROC is <b>tight</b>" in sentences[0] and "<b>nolung</b>" not in " ".join(sentences)


def test_a_study_without_original_runs_has_findings_and_no_comparison() -> None:
    results = _results([0])
    sentences = findings_sentences(results[results["mask"] != "original"], pd.DataFrame())
    assert "highest mean test AUROC is <b>tight</b> (0.800;" not in sentences[0]
    assert "<b>tight</b> (0.800)" in sentences[0] and "significantly" not in " ".join(sentences)
