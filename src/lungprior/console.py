"""Rich consoles for lungprior's output (user strings printed as plain text), and durations as people say them.

Rich parses `[...]` as markup by default, so an id like `[/x]` raises when printed; every console here has
markup off (tables, titles and progress descriptions included) and no highlighting.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console


def plain_console(**kwargs: Any) -> Console:
    """A `rich.console.Console` with markup and highlighting off (other keywords passed on)."""
    return Console(**{"highlight": False, **kwargs, "markup": False})


def duration(seconds: float) -> str:
    """'under a minute', 'about 7 min' or 'about 2 h 05 min'."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"
