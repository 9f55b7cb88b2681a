"""The regime map: config loading, the per-cell patterns, and configs/regime_smoke.yaml end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lungprior.cli.main import app
from lungprior.errors import LungpriorError
from lungprior.experiment.regime import (
    cell_config,
    load_regime,
    parse_cell,
    patterns,
    run_regime,
    seconds_to_best,
    seconds_to_target,
)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "regime_smoke.yaml"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cell(**auroc: tuple[float, float, float]) -> pd.DataFrame:
    """A cell from {mode: (macro, No Finding, seconds per epoch)}."""
    rows = [{"backbone": "b", "prior": mode if mode != "loose" else "loose-10mm", "mode": mode,
             "macro_auroc_mean": v[0], "no_finding_auroc_mean": v[1], "attention_in_lung_mean": 0.5,
             "seconds_per_epoch_mean": v[2], "seconds_to_target_mean": v[2] * 3, "seconds_to_best_mean": v[2] * 5}
            for mode, v in auroc.items()]
    return pd.DataFrame(rows)


def test_patterns_recognise_the_study_and_the_shortcut_pattern() -> None:
    study = patterns(_cell(original=(0.80, 0.70, 10.0), loose=(0.79, 0.74, 9.0), tight=(0.75, 0.71, 7.0),
                           nolung=(0.95, 0.9, 9.0)))
    assert study["study_pattern"] and not study["shortcut_pattern"]
    assert study["best_macro_auroc"] == "original" and study["best_no_finding_auroc"] == "loose-10mm"
    assert study["best_seconds_to_target"] == "tight" and study["outside_lung_auroc"] == 0.95  # control not a winner
    shortcut = patterns(_cell(original=(0.60, 0.55, 10.0), loose=(0.70, 0.66, 9.0), tight=(0.72, 0.68, 7.0)))
    assert shortcut["shortcut_pattern"] and not shortcut["study_pattern"]
    assert shortcut["best_macro_auroc"] == "tight"


def test_tight_cheaper_at_the_target_or_at_its_own_best() -> None:
    cell = _cell(original=(0.80, 0.70, 10.0), loose=(0.79, 0.74, 9.0), tight=(0.65, 0.60, 7.0))
    cell.loc[cell["mode"] == "tight", "seconds_to_target_mean"] = float("nan")  # tight never reaches the target
    assert patterns(cell)["study_pattern"]  # ... but gets to its own (lower) best sooner
    cell.loc[cell["mode"] == "tight", "seconds_to_best_mean"] = 100.0
    assert not patterns(cell)["study_pattern"]
    cell.loc[cell["mode"] == "tight", "seconds_to_target_mean"] = 200.0  # only tight reaches the target
    cell.loc[cell["mode"] == "original", "seconds_to_target_mean"] = float("nan")
    assert patterns(cell)["study_pattern"]


def test_a_prior_is_at_the_target_only_when_every_seed_is() -> None:
    cell = _cell(original=(0.80, 0.70, 10.0), loose=(0.79, 0.74, 9.0), tight=(0.65, 0.60, 7.0))
    cell["n_seeds"], cell["seeds_at_target"] = 3, 3
    cell.loc[cell["mode"] == "tight", ["seconds_to_target_mean", "seconds_to_best_mean"]] = (40.0, 50.0)
    assert not patterns(cell)["study_pattern"]  # every seed there, later than original (30 s)
    assert patterns(cell)["best_seconds_to_target"] == "loose-10mm"
    cell.loc[cell["mode"] == "tight", "seconds_to_target_mean"] = 5.0  # ... sooner, but one seed of three only:
    cell.loc[cell["mode"] == "tight", "seeds_at_target"] = 1
    assert patterns(cell)["best_seconds_to_target"] == "loose-10mm"  # not the fastest to the target
    assert not patterns(cell)["study_pattern"]  # and judged at its own best: 50 s against original's 50 s
    cell.loc[cell["mode"] == "tight", "seconds_to_best_mean"] = 20.0
    assert patterns(cell)["study_pattern"]


def test_seconds_to_target_and_to_best() -> None:
    history = pd.DataFrame({"val_auroc": [0.6, 0.75, 0.9, 0.7], "epoch_seconds": [10.0, 11.0, 12.0, 13.0]})
    assert seconds_to_target(history, 0.75) == 21.0
    assert pd.isna(seconds_to_target(history, 0.95))
    assert seconds_to_best(history) == 33.0


def test_load_regime_and_cells(tmp_path: Path) -> None:
    cfg, regime = load_regime(SMOKE)
    assert regime.bias == [0.0, 0.9] and regime.context == [1.0]
    cell = cell_config(cfg, 0.9, 1.0)
    assert cell.dataset.phantom.bias == 0.9 and cell.dataset.phantom.context == 1.0 and cfg.dataset.phantom.bias == 0
    full, full_regime = load_regime(ROOT / "configs" / "regime_map.yaml")
    assert len(full_regime.bias) == 3 and len(full_regime.context) == 3 and len(full.training.seeds) >= 3
    assert {"original", "tight", "loose", "nolung"} <= {m.mode for m in full.masks}
    control, control_regime = load_regime(ROOT / "configs" / "regime_unbiased_val.yaml")  # the map's cell, val unbiased
    assert control.dataset.phantom.val_bias == 0.0 and full.dataset.phantom.val_bias is None
    assert control.dataset.phantom.model_copy(update={"val_bias": None}) == full.dataset.phantom
    assert control.masks == full.masks and control.evaluation == full.evaluation
    assert control.training.model_copy(update={"seeds": full.training.seeds}) == full.training
    assert control_regime.bias == [0.9] and control_regime.context == [0.75]
    long, long_regime = load_regime(ROOT / "configs" / "regime_map_long.yaml")  # the map, 96 epochs, nodules x 4
    assert long_regime == full_regime and long.masks == full.masks
    assert long.training.model_copy(update={"epochs": 24, "patience": 24, "precision": "auto"}) == full.training
    assert long.dataset.phantom.model_copy(update={"finding_conspicuity": None}) == full.dataset.phantom
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("context: [1.0]", "context: [2.0]"))
    with pytest.raises(LungpriorError, match=r"regime\.context"):
        load_regime(bad)
    bad.write_text(SMOKE.read_text().replace("epochs: 1", "epochs: 0"))
    with pytest.raises(LungpriorError, match=r"training\.epochs"):
        load_regime(bad)


def test_regime_smoke_runs_every_cell(tmp_path: Path) -> None:
    cfg, regime = load_regime(SMOKE)
    lines: list[str] = []
    table_path, _ = run_regime(cfg, regime, tmp_path / "out", cells=[parse_cell("0.9, 1")], log=lines.append)
    assert set(pd.read_csv(table_path)["bias"]) == {0.9}  # one cell run, the other not yet
    assert "regime cell bias0_context1: not run yet (--cell 0,1)" in lines
    lines.clear()
    table_path, map_path = run_regime(cfg, regime, tmp_path / "out", cells=[(0.0, 1.0)], log=lines.append)
    assert not any(line.startswith("regime cell bias0.9") for line in lines)  # finished: read, not rerun
    table, regime_map = pd.read_csv(table_path), pd.read_csv(map_path)
    assert len(table) == 2 * 4 and set(table["prior"]) == {"original", "loose-10mm", "tight", "nolung"}
    assert table["macro_auroc_mean"].between(0, 1).all() and (table["seconds_per_epoch_mean"] > 0).all()
    assert table["seeds_at_target"].between(0, table["n_seeds"]).all()
    assert len(regime_map) == 2 and regime_map["outside_lung_auroc"].between(0, 1).all()
    assert regime_map["study_pattern"].isin([True, False]).all()
    assert set(regime_map["best_macro_auroc"]) <= {"original", "loose-10mm", "tight"}
    report = (tmp_path / "out" / "cells" / "bias0.9_context1" / "report.html").read_text()
    assert "Outside-lung AUROC" in report and "Cost per prior" in report and "Which prior for which finding" in report
    again, _ = run_regime(cfg, regime, tmp_path / "out", log=lambda _: None)  # every cell skipped: same tables
    pd.testing.assert_frame_equal(pd.read_csv(again), table)
    lines.clear()  # another precision (a runtime setting, as for the runs themselves): the finished cell still counts
    other = cfg.model_copy(update={"training": cfg.training.model_copy(update={"precision": "bf16-mixed"})})
    run_regime(other, regime, tmp_path / "out", cells=[(0.0, 1.0)], log=lines.append)
    assert not any("not run yet" in line for line in lines)
    with pytest.raises(LungpriorError, match=r"--cell 0.5,1: not a cell of this map"):
        run_regime(cfg, regime, tmp_path / "out", cells=[(0.5, 1.0)])
    with pytest.raises(LungpriorError, match=r"--cell expects BIAS,CONTEXT"):
        parse_cell("0.9")


@pytest.mark.parametrize(("cell", "message"), [("0.5,1", "--cell 0.5,1: not a cell of this map"),
                                               ("bias", "--cell expects BIAS,CONTEXT")])
def test_cli_refuses_a_bad_cell_before_running(tmp_path: Path, cell: str, message: str) -> None:
    result = CliRunner().invoke(app, ["regime", str(SMOKE), "--out", str(tmp_path / "out"), "--cell", cell])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "cells").exists()
