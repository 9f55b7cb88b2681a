"""`lungprior regime`: the regime map, one study per (shortcut strength, outside context) cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from lungprior.console import plain_console


def regime_command(
    config: Path = typer.Argument(..., help="Regime YAML file: an experiment file with a 'regime:' section."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: experiments/<name>)."),
    cell: list[str] = typer.Option(
        None, "--cell", help="Run only this cell, BIAS,CONTEXT (e.g. 0.9,1); repeat for several. The tables also "
        "hold the cells already finished in --out.",
    ),
) -> None:
    """Run the cells of the regime map (resumable) and print which prior wins where."""
    from lungprior.experiment.regime import load_regime, parse_cell, run_regime

    cfg, regime = load_regime(config)
    cells = [parse_cell(c) for c in cell] if cell else None
    console = plain_console()
    _, map_path = run_regime(cfg, regime, out or Path("experiments") / cfg.name, cells=cells, log=console.print)
    if not map_path.is_file():
        return
    frame = pd.read_csv(map_path)
    table = Table(title=f"regime map: {map_path}")
    for col in frame.columns:
        table.add_column(col, no_wrap=True)
    for _, row in frame.iterrows():
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `regime` to the app."""
    app.command("regime")(regime_command)
