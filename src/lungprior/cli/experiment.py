"""`lungprior experiment` (a study from a YAML file) and `lungprior demo` (the built-in demo study)."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.experiment import load_experiment, run_experiment


def _print_results(console: Console, exp: Path) -> None:
    results = pd.read_csv(exp / "results.csv")
    table = Table(title="AUROC (test split, mean over seeds) per backbone and mask")
    targets = ["Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis", "macro", "No Finding"]
    for col in ("backbone", "mask"):
        table.add_column(col, no_wrap=True)
    for col in targets:
        table.add_column(col, justify="right", no_wrap=True)
    for (backbone, mask), part in results.groupby(["backbone", "mask"], sort=False):
        values = part.groupby("class")["auroc"].mean()
        table.add_row(backbone, mask, *(f"{values.get(t, float('nan')):.3f}" for t in targets))
    # never truncate: a table wider than the terminal (or than 80 columns in a log file) wraps instead
    width = console.measure(table, options=console.options.update_width(400)).maximum
    wide = plain_console(width=max(console.width, width), file=console.file)
    wide.print(table)


def experiment_command(
    config: Path = typer.Argument(..., help="Experiment YAML file (see configs/)."),
    out: Path = typer.Option(None, "--out", help="Experiment folder (default: experiments/<name>)."),
) -> None:
    """Run a whole study: data, segmentation, every backbone x mask x seed, evaluation, comparisons, report."""
    cfg = load_experiment(config)
    exp = output_dir(out or Path("experiments") / cfg.name)
    console = plain_console()
    start = time.perf_counter()
    result = run_experiment(cfg, exp, log=console.print)
    if result.report is None:  # not the lead process of a multi-process launch
        return
    _print_results(console, exp)
    _print_headline(console, exp, result.report, time.perf_counter() - start)
    _print_warnings(console, exp, result.runs)


def _print_warnings(console: Console, exp: Path, runs: list[dict]) -> None:
    from lungprior.report.run_warnings import experiment_warnings, print_warnings

    print_warnings(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
                   experiment_warnings(exp, runs))


def _print_headline(console: Console, exp: Path, report: Path | None, seconds: float) -> None:
    """The study in three lines (what was compared, what came out, where the report is) and the time taken."""
    from lungprior.report.headline import headline_lines

    console.print()
    for line in headline_lines(exp, report):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"({seconds:.0f} s)")


def demo_command(
    out: Path = typer.Option(Path("lungprior-demo"), "--out", help="Folder for the demo study."),
    full: bool = typer.Option(False, "--full", help="The fuller study (demo_full.yaml): LiteMedSAM fine-tuned and "
                              "used for every film's masks, two backbones x original/loose/tight x two seeds, "
                              "more films; hours on a CPU, minutes on a GPU."),
) -> None:
    """The demo: a synthetic benchmark whose training films carry shortcut markers outside the lungs;
    ResNet10-T on original, loose-10mm and tight films, evaluated on unbiased test films; comparisons and the HTML
    report.
    CPU only, no downloads, a few minutes on two cores."""
    demo = resources.files("lungprior.experiment").joinpath("demo_full.yaml" if full else "demo.yaml")
    with resources.as_file(demo) as path:
        cfg = load_experiment(path)
    output_dir(out)
    console = plain_console()
    start = time.perf_counter()
    result = run_experiment(cfg, out, log=console.print)
    _print_results(console, out)
    _print_headline(console, out, result.report, time.perf_counter() - start)
    _print_warnings(console, out, result.runs)


def register(app: typer.Typer) -> None:
    """Add `experiment` and `demo` to the app."""
    app.command("experiment")(experiment_command)
    app.command("demo")(demo_command)
