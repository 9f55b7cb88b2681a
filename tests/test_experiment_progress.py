"""`lungprior experiment` says "run k of N" with the time left as each run starts (stages replaced by stand-ins
with known durations: one run found finished, the others trained in 120 s and 240 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lungprior.experiment.runner as runner
from lungprior.console import duration
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.progress import RunProgress
from lungprior.experiment.stages import StageOutcome

CONFIG = {
    "name": "progress",
    "dataset": {"kind": "phantom", "phantom": {"n": 20, "size": 64}},
    "segmentation": {"source": "ground_truth"},
    "masks": [{"mode": "original"}, {"mode": "tight"}],
    "training": {"backbones": ["resnet10t"], "seeds": [0, 1], "image_size": 32, "epochs": 1},
}


def test_duration_reads_as_a_person_would_say_it() -> None:
    assert [duration(s) for s in (10, 60, 425, 3600, 7500)] == [
        "under a minute", "about 1 min", "about 7 min", "about 1 h 00 min", "about 2 h 05 min"]


def test_time_left_counts_only_runs_trained_now() -> None:
    progress = RunProgress(4)
    assert progress.starting(1, "a") == "run 1 of 4: a (time left: estimated after the first trained run)"
    progress.finished(0.0, ran=False)  # found finished: no estimate from it
    assert "estimated after the first trained run" in progress.starting(2, "b")
    progress.finished(120.0, ran=True)
    assert progress.starting(3, "c") == "run 3 of 4: c (about 4 min left)"


def test_experiment_logs_run_k_of_n_with_time_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lungprior.experiment.tables as tables
    import lungprior.report.html as report

    seconds = iter([0.0, 120.0, 240.0, 60.0])

    def fake_data(cfg: object, exp: Path) -> StageOutcome:
        return StageOutcome("data", exp / "data", "h", False, {"manifest": str(exp / "manifest.csv")})

    def fake_run(cfg: object, exp: Path, data: object, seg: object, backbone: str, mask: object, seed: int,
                 **_: object) -> StageOutcome:
        took = next(seconds)
        return StageOutcome("run", exp, "h", took > 0, {"seconds": took})

    monkeypatch.setattr(runner, "data_stage", fake_data)
    monkeypatch.setattr(runner, "segmentation_stage", lambda cfg, exp, data: StageOutcome(
        "segmentation", exp, "h", False, {"masks_dir": str(exp / "masks")}))
    monkeypatch.setattr(runner, "run_stage_for", fake_run)
    monkeypatch.setattr(tables, "write_tables", lambda *a, **k: [])
    monkeypatch.setattr(report, "write_report", lambda *a, **k: tmp_path / "report.html")
    lines: list[str] = []
    runner.run_experiment(ExperimentConfig.model_validate(CONFIG), tmp_path, log=lines.append)
    started = [line for line in lines if line.startswith("run ") and " of 4: " in line]
    assert started == [
        "run 1 of 4: resnet10t__original__seed0 (time left: estimated after the first trained run)",
        "run 2 of 4: resnet10t__tight__seed0 (time left: estimated after the first trained run)",
        "run 3 of 4: resnet10t__original__seed1 (about 4 min left)",  # 120 s a run, two runs to go
        "run 4 of 4: resnet10t__tight__seed1 (about 3 min left)",  # (120 + 240) / 2 s for the last run
    ]
