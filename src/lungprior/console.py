"""Rich consoles for lungprior's output: user strings (ids, paths, names) are printed as plain text.

Rich parses `[...]` as markup by default, so an id like `[/x]` raises when printed; every console here has
markup off (tables, titles and progress descriptions included) and no highlighting.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console


def plain_console(**kwargs: Any) -> Console:
    """A `rich.console.Console` with markup and highlighting off (other keywords passed on)."""
    return Console(**{"highlight": False, **kwargs, "markup": False})
