"""Where the shared real data lives: `../shared/data` beside the repository (or one level further up)."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def shared_data(name: str) -> Path | None:
    """The folder `shared/data/<name>` next to the repository or its parent; None when absent."""
    for base in (_ROOT.parent, _ROOT.parent.parent):
        folder = base / "shared" / "data" / name
        if folder.is_dir():
            return folder
    return None
