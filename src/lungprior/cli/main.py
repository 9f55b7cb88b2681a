"""The `lungprior` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from lungprior.data.atomic import os_error_message
from lungprior.errors import LungpriorError

app = typer.Typer(
    name="lungprior",
    help="Lung masks as a controllable spatial prior for chest X-ray classification.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)



@app.callback()
def _root() -> None:
    """Lung masks as a controllable spatial prior for chest X-ray classification."""


# Pipeline order: data -> segment -> masks -> classify -> evaluate -> report.
COMMAND_MODULES: tuple[str, ...] = (
    "lungprior.cli.phantom",
    "lungprior.cli.nih",
    "lungprior.cli.segdata",
    "lungprior.cli.finetune",
    "lungprior.cli.segment",
    "lungprior.cli.segeval",
    "lungprior.cli.masks",
    "lungprior.cli.train",
    "lungprior.cli.evaluate",
    "lungprior.cli.experiment",
    "lungprior.cli.predict",
    "lungprior.cli.export",
    "lungprior.cli.chexmask",
    "lungprior.cli.regime",
)



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
            where = next((kwargs[k] for k in _OUTPUT_OPTIONS if kwargs.get(k) is not None), None)
            typer.echo(f"error: {os_error_message(exc, where)}", err=True)
            raise typer.Exit(2) from None

    return wrapper


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)
for _info in app.registered_commands:
    _info.callback = _one_line_errors(_info.callback)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a `LungpriorError` prints one line on stderr and exits with status 2."""
    try:
        app(args=argv, standalone_mode=True)
    except LungpriorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
