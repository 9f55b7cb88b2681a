"""The three headline lines: what was compared, what came out (CI, p, Holm over masks), where the report is."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lungprior.errors import LungpriorError
from lungprior.report.headline import headline_html, headline_lines


def _write(exp: Path, diffs: dict[str, list[tuple[float, float]]]) -> None:
    """results/comparisons for resnet18: per masked input, per seed (macro AUROC, bootstrap p); original 0.65."""
    results, comparisons = [], []
    for mask, per_seed in {"original": [(0.65, float("nan"))] * len(next(iter(diffs.values()))), **diffs}.items():
        for seed, (auc, p) in enumerate(per_seed):
            results.append({"backbone": "resnet18", "mask": mask, "seed": seed, "class": "macro", "auroc": auc,
                            "ci_low": auc - 0.05, "ci_high": auc + 0.05})
            if mask != "original":
                comparisons.append({"backbone": "resnet18", "seed": seed, "mask": mask, "versus": "original",
                                    "target": "macro AUROC", "diff": auc - 0.65, "p": p, "p_holm": float("nan"),
                                    "ci_low": auc - 0.65 - 0.06, "ci_high": auc - 0.65 + 0.06,
                                    "test": "paired patient bootstrap (2000)"})
                comparisons.append({"backbone": "resnet18", "seed": seed, "mask": mask, "versus": "original",
                                    "target": "Mass", "diff": 0.0, "p": 0.9, "p_holm": 1.0})
    exp.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(results).to_csv(exp / "results.csv", index=False)
    pd.DataFrame(comparisons).to_csv(exp / "comparisons.csv", index=False)
    cfg = {"dataset": {"kind": "phantom", "phantom": {"bias": 0.9, "test_bias": 0.0}}}
    (exp / "experiment.json").write_text(json.dumps(cfg))


def test_best_mask_with_ci_and_holm_over_masks(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.82, 0.004)], "loose-10mm": [(0.70, 0.03)]})
    compared, outcome, where = headline_lines(tmp_path)
    assert compared.startswith("Compared: resnet18 trained on original films vs lung-masked films (tight, loose-10mm)")
    assert "(bias 0.9) but not in the test split (bias 0)" in compared and "1 seed." in compared
    assert outcome.startswith("Result: tight beats original for resnet18: macro AUROC 0.820 [0.770, 0.870] vs 0.650")
    assert "difference +0.170 (95% CI +0.110 to +0.230)" in outcome
    assert "paired patient bootstrap (2000) p = 0.004, Holm over 2 masked inputs: p = 0.008." in outcome
    assert where == f"Report: {tmp_path / 'report.html'} (tables: results.csv, comparisons.csv in {tmp_path})."
    page = headline_html(tmp_path)  # the report does not name itself
    assert page.count("<p>") == 2 and "Report:" not in page


def test_a_validation_split_with_its_own_shortcut_strength_is_named(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.82, 0.004)]})
    cfg = {"dataset": {"kind": "phantom", "phantom": {"bias": 0.9, "val_bias": 0.0, "test_bias": 0.0}}}
    (tmp_path / "experiment.json").write_text(json.dumps(cfg))
    compared, _, _ = headline_lines(tmp_path)
    assert "in training (bias 0.9, validation 0) but not in the test split (bias 0)" in compared


def test_holm_can_remove_significance(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.70, 0.03)], "loose-10mm": [(0.68, 0.04)]})  # Holm: 0.06, 0.06
    outcome = headline_lines(tmp_path)[1]
    assert outcome.startswith("Result: tight does not differ significantly from original")
    assert "Holm over 2 masked inputs: p = 0.06." in outcome


def test_headline_findings_markers_and_table_agree_on_p_003_004(tmp_path: Path) -> None:
    """Tight p 0.03, loose p 0.04 (macro): Holm over the two masked inputs gives 0.06 / 0.06, so no part of the
    report calls either significant; comparisons.csv written by the experiment carries the same adjusted p."""
    from lungprior.experiment.tables import add_macro_holm
    from lungprior.report.findings import findings_sentences, seed_marker
    from lungprior.report.html import _auroc_table

    _write(tmp_path, {"tight": [(0.70, 0.03)], "loose-10mm": [(0.68, 0.04)]})
    raw = pd.read_csv(tmp_path / "comparisons.csv")
    written = add_macro_holm(raw.rename(columns={"mask": "a"})).rename(columns={"a": "mask"})
    macro = written[written["target"] == "macro AUROC"]
    assert macro["p_holm"].tolist() == pytest.approx([0.06, 0.06]) and not macro["p_holm_bound"].any()
    written.to_csv(tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert "does not differ significantly" in outcome and "p = 0.06" in outcome
    results = pd.read_csv(tmp_path / "results.csv")
    sentence = findings_sentences(results, written)[0]
    assert "not significantly higher than the original images" in sentence and "= 0.06" in sentence
    assert "significantly higher" not in sentence.replace("not significantly higher", "")
    assert seed_marker(macro[macro["mask"] == "tight"], "macro AUROC") == ("↑1/1 (sig. 0)", False)
    table = _auroc_table(results, written)
    assert 'class="sig"' not in table and "(sig. 0)" in table


def test_floors_read_as_bounds_and_a_holm_floor_stays_a_bound(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.82, 0.001)]})
    comparisons = pd.read_csv(tmp_path / "comparisons.csv").assign(p_floor=0.001)
    comparisons.to_csv(tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert "paired patient bootstrap (2000) p ≤ 0.001" in outcome
    assert "one masked input, no adjustment: p ≤ 0.001" in outcome and "p = 0.001" not in outcome
    _write(tmp_path, {"tight": [(0.82, 0.001)], "loose-10mm": [(0.70, 0.3)]})
    pd.read_csv(tmp_path / "comparisons.csv").assign(p_floor=0.001).to_csv(tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert "Holm over 2 masked inputs: p ≤ 0.002" in outcome


def test_a_one_patient_finding_is_never_claimed(tmp_path: Path) -> None:
    """Nodule's tiny raw p comes from one patient: it is not testable, never named as the significant class;
    the headline names the next real claim (Pneumonia), or says that none can be made."""
    _write(tmp_path, {"tight": [(0.70, 0.3)]})
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    note = ("not testable: 2 films with the finding from 1 patient (needs ≥ 5 patients with and ≥ 5 without)")
    nodule = {"backbone": "resnet18", "seed": 0, "mask": "tight", "versus": "original", "target": "Nodule",
              "diff": 0.368, "p": float("nan"), "p_holm": float("nan"), "testable": False, "note": note,
              "n_pos": 2, "n_pos_patients": 1}
    pneumonia = {"backbone": "resnet18", "seed": 0, "mask": "tight", "versus": "original", "target": "Pneumonia",
                 "diff": 0.2, "p": 0.004, "p_holm": 0.02, "ci_low": 0.05, "ci_high": 0.35, "testable": True}
    pd.concat([comparisons.assign(testable=True), pd.DataFrame([nodule, pneumonia])]).to_csv(
        tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert "per class, Pneumonia +0.200 (95% CI +0.050 to +0.350), Holm-adjusted p = 0.02" in outcome
    assert "not testable: Nodule (2 films with the finding from 1 patient)" in outcome
    assert "Nodule +0.368" not in outcome
    # without Pneumonia, and with an untestable macro row too: no claim at all
    only = pd.concat([comparisons.assign(testable=True), pd.DataFrame([nodule])])
    only.loc[only["target"] == "macro AUROC", ["p", "testable", "note"]] = [float("nan"), False, note]
    only.to_csv(tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert "is not testable (2 films with the finding from 1 patient); no significance claim can be made" in outcome
    from lungprior.report.findings import seed_marker

    rows = only[(only["target"] == "Nodule")]
    assert seed_marker(rows, "Nodule") == ("not testable", False)


def test_names_the_most_significant_class(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.70, 0.3)]})
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    extra = {"backbone": "resnet18", "seed": 0, "mask": "tight", "versus": "original", "target": "Pneumonia",
             "diff": 0.248, "p": 0.001, "p_holm": 0.006, "ci_low": 0.106, "ci_high": 0.394}
    pd.concat([comparisons, pd.DataFrame([extra])]).to_csv(tmp_path / "comparisons.csv", index=False)
    outcome = headline_lines(tmp_path)[1]
    assert outcome.startswith("Result: tight does not differ significantly from original")
    assert outcome.endswith("; per class, Pneumonia +0.248 (95% CI +0.106 to +0.394), Holm-adjusted p = 0.006.")


def test_several_seeds_report_ranges(tmp_path: Path) -> None:
    _write(tmp_path, {"tight": [(0.80, 0.001), (0.76, 0.02), (0.78, 0.2)]})
    outcome = headline_lines(tmp_path)[1]
    assert outcome.startswith("Result: tight does not differ significantly from original for resnet18 "
                              "(significant in 2 of 3 seeds)")
    assert "difference +0.110 to +0.150 over seeds" in outcome
    assert "one masked input, no adjustment: p = 0.001 to 0.2." in outcome


def test_missing_tables_raise(tmp_path: Path) -> None:
    with pytest.raises(LungpriorError, match=r"no results\.csv or comparisons\.csv"):
        headline_lines(tmp_path)


def test_a_study_without_an_original_run(tmp_path: Path) -> None:
    """One mask and no original run: an empty comparisons table with its header; headline and AUROC table say so."""
    from lungprior.experiment.tables import comparisons_table
    from lungprior.report.html import _auroc_table

    empty = comparisons_table([{"mode": "tight", "backbone": "resnet18", "seed": 0}], 10, "max")
    assert empty.empty and {"mask", "versus", "target"} <= set(empty.columns)
    results = pd.DataFrame([{"backbone": "resnet18", "mask": "tight", "seed": 0, "class": "macro", "auroc": 0.8,
                             "ci_low": 0.75, "ci_high": 0.85}])
    tmp_path.mkdir(exist_ok=True)
    results.to_csv(tmp_path / "results.csv", index=False)
    empty.to_csv(tmp_path / "comparisons.csv", index=False)
    compared, result, _ = headline_lines(tmp_path)
    assert "without an original-film run" in compared and "no masked input was compared" in result
    assert "0.800 [0.750, 0.850]" in _auroc_table(results, pd.read_csv(tmp_path / "comparisons.csv"))


def test_holm_keeps_a_floor_a_bound() -> None:
    import numpy as np

    from lungprior.evaluate.stats import holm_adjust_bounds

    adj, bound = holm_adjust_bounds(np.array([0.002, 0.3, np.nan]), np.array([True, False, False]))
    assert adj[:2] == pytest.approx([0.004, 0.3]) and np.isnan(adj[2]) and bound.tolist() == [True, False, False]
    # the second-smallest p inherits the bound when the first one's scaled value is the larger
    adj, bound = holm_adjust_bounds(np.array([0.004, 0.005]), np.array([True, False]))
    assert adj == pytest.approx([0.008, 0.008]) and bound.tolist() == [True, True]
    adj, bound = holm_adjust_bounds(np.array([0.004, 0.02]), np.array([True, False]))
    assert adj == pytest.approx([0.008, 0.02]) and bound.tolist() == [True, False]
