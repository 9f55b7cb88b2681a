"""`lungprior evaluate` shows its steps (predictions, bootstrap, Grad-CAM) as they start, and at 80 columns its
table never splits a confidence interval over two lines."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lungprior.classify import TrainConfig, train
from lungprior.cli.main import app
from lungprior.console import plain_console
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.evaluate.steps import StepProgress
from lungprior.labels import FINDINGS

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CI = re.compile(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    generate_benchmark(PhantomConfig(n=40, size=64, seed=6, val_fraction=0.25, test_fraction=0.25), root / "bench",
                       workers=1, progress=False)
    cfg = TrainConfig(manifest=str(root / "bench" / "manifest.csv"), out=str(root / "a-rather-long-run-folder-name"),
                      mode="tight", backbone="resnet10t", image_size=32, epochs=1, batch_size=16, accelerator="cpu",
                      devices="1")
    train(cfg, progress=False)
    return Path(cfg.out)


def test_evaluate_shows_its_steps_and_keeps_each_ci_on_one_line_at_80_columns(run: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--bootstrap", "20", "--max-cam", "2"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if ": step " in line]
    assert steps == ["evaluate: step 1 of 3, predictions (test and val)",
                     "evaluate: step 2 of 3, bootstrap (20 patient resamples)",
                     "evaluate: step 3 of 3, Grad-CAM (up to 2 positives per finding)"]
    assert re.search(r"^evaluate: Grad-CAM done in \d+ s$", result.stderr, re.M)
    assert "step" not in result.stdout  # the results stay clean on standard output
    metrics = json.loads((run / "metrics.json").read_text())
    defined = [metrics["per_class"][k][m] for k in FINDINGS for m in ("auroc", "auprc")]
    defined += [metrics["macro_auroc"], metrics["no_finding"]["auroc"], metrics["no_finding"]["auprc"]]
    expected = sum(1 for ci in defined if ci.get("estimate") is not None)
    assert expected >= 5 and len(CI.findall(result.stdout)) == expected  # every CI whole on its line
    table = [line for line in result.stdout.splitlines() if line.startswith(" ")]  # warnings below it stay whole
    assert len(table) >= 10 and max(len(line) for line in table) <= 80


def test_steps_run_under_a_spinner_on_a_terminal_and_print_nothing_when_off() -> None:
    out = io.StringIO()
    steps = StepProgress("evaluate", ["predictions", "bootstrap"],
                         console=plain_console(file=out, force_terminal=True, width=80))
    with steps.step("bootstrap", "5 patient resamples"):
        pass
    assert "evaluate: step 2 of 2, bootstrap (5 patient resamples)" in out.getvalue()
    assert "evaluate: bootstrap done in 0 s" in out.getvalue()
    quiet = io.StringIO()
    off = StepProgress("evaluate", ["predictions"], enabled=False, console=plain_console(file=quiet))
    with off.step("predictions"):
        pass
    assert quiet.getvalue() == ""
