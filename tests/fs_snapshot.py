"""A file-system snapshot of a folder tree, to check that a command wrote nothing outside its `--out`."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every entry under `root` (but not under `skip`) -> (size, mtime in ns) of files, (0, 0) of the rest."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if skip is not None and (here == skip or skip in here.parents):
            dirs[:] = []
            continue
        for name in [*dirs, *files]:
            path = here / name
            if skip is not None and path == skip:
                continue
            st = path.lstat()
            plain = path.is_file() and not path.is_symlink()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns) if plain else (0, 0)
    return found


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Entries added, removed or modified between two snapshots."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
