"""The `lungprior` command. Each subcommand lives in its own module, which is imported only when that command
runs (or shows its help), so that `lungprior --help` does not load PyTorch."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import click
import typer
from typer.core import TyperGroup

from lungprior import __version__
from lungprior.errors import LungpriorError
from lungprior.extras import missing_extra_error

#: Every command in pipeline order (data -> segment -> masks -> classify -> evaluate -> report): its module and
#: its one-line summary (shown by `lungprior --help`, so that listing the commands imports none of them).
COMMANDS: dict[str, tuple[str, str]] = {
    "phantom": ("lungprior.cli.phantom", "Generate the synthetic benchmark (films, masks, manifest)."),
    "nih": ("lungprior.cli.nih", "Select the five findings + No Finding from NIH ChestX-ray14."),
    "segdata": ("lungprior.cli.segdata", "Pair images with lung masks into a checked, split manifest."),
    "finetune": ("lungprior.cli.finetune", "Fine-tune a box-prompted lung segmenter (LiteMedSAM, MedSAM)."),
    "segment": ("lungprior.cli.segment", "Segment the lungs of every film in a manifest, prompt-free."),
    "segeval": ("lungprior.cli.segeval", "Dice, IoU, HD95 of predicted lung masks against ground truth."),
    "masks": ("lungprior.cli.masks", "Draw a gallery: tight vs the chosen mask, the masked film beside."),
    "train": ("lungprior.cli.train", "Train a multi-label CNN on original or masked films."),
    "evaluate": ("lungprior.cli.evaluate", "AUROC/AUPRC with CIs for a trained run (predictions, metrics)."),
    "compare": ("lungprior.cli.evaluate", "Compare two runs per class: paired tests, Holm, 95% CIs."),
    "experiment": ("lungprior.cli.experiment", "Run a whole study from one YAML file, up to report.html."),
    "demo": ("lungprior.cli.experiment", "The demo: original vs lung-masked films on the benchmark."),
    "predict": ("lungprior.cli.predict", "Segment, mask and score new films (CSV, PNGs, index.html)."),
    "export": ("lungprior.cli.export", "Export a run's classifier to ONNX with a model card."),
    "chexmask": ("lungprior.cli.chexmask", "Convert CheXmask's published NIH lung masks to a masks folder."),
    "regime": ("lungprior.cli.regime", "Run the regime map's cells and print which prior wins where."),
}

#: Command parameters that name where a command writes (named by a file-system error that names no file).
_OUTPUT_OPTIONS = ("out", "gallery", "run")


def _one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `LungpriorError` or a file-system error (read-only, permission, full disk) raised by a command
    into one line on stderr ("error: PATH: cause") and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LungpriorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # e.g. a full disk: the error may name no file, the command's output then
            from lungprior.data.atomic import os_error_message

            where = next((kwargs[k] for k in _OUTPUT_OPTIONS if kwargs.get(k) is not None), None)
            typer.echo(f"error: {os_error_message(exc, where)}", err=True)
            raise typer.Exit(2) from None
        except ImportError as exc:
            _exit_if_extra_missing(exc)
            raise

    return wrapper


def _exit_if_extra_missing(exc: ImportError) -> None:
    """One line naming the extra to install (exit status 2) when `exc` is a missing optional dependency."""
    error = missing_extra_error(exc)
    if error is not None:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@functools.cache
def load_command(name: str) -> click.Command:
    """Import the module of command `name` and build its click command (with one-line errors)."""
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ImportError as exc:
        _exit_if_extra_missing(exc)
        raise
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    module.register(holder)
    holder.callback()(lambda: None)  # a callback makes typer build a group even for a module with one command
    for info in holder.registered_commands:
        info.callback = _one_line_errors(info.callback)
    group = typer.main.get_group(holder)
    command = group.commands[name]
    command.short_help = COMMANDS[name][1]
    return command


class _LazyGroup(TyperGroup):
    """A group that lists its commands from `COMMANDS` and imports a command's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


app = typer.Typer(
    name="lungprior",
    cls=_LazyGroup,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lungprior {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    """Lung masks as a controllable spatial prior for chest X-ray classification.

    Every command has --help. Start with `lungprior demo` or the quickstart in the README."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a `LungpriorError` prints one line on stderr and exits with status 2."""
    try:
        app(args=argv, prog_name="lungprior", standalone_mode=True)
    except LungpriorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
