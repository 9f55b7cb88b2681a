"""`lungprior.data` is the bottom layer: it imports no stage above it (file-layout rules live in `lungprior.layout`)."""

from __future__ import annotations

import ast
from pathlib import Path

import lungprior

SRC = Path(lungprior.__file__).parent
ABOVE_DATA = ("segment", "masks", "classify", "experiment", "evaluate", "predict", "report", "cli")


def _imported(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):  # imports inside functions count too
        if isinstance(node, ast.ImportFrom) and node.module == "lungprior":  # from lungprior import segment
            found.extend((node.lineno, f"lungprior.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def upward_imports(files: list[Path], root: Path) -> list[str]:
    """`file:line: module` for every import of a stage above `data`."""
    return [f"{path.relative_to(root)}:{line}: {module}"
            for path in files for line, module in sorted(_imported(path.read_text(encoding="utf-8")))
            if module.split(".")[0] == "lungprior" and module.split(".")[1:2] and module.split(".")[1] in ABOVE_DATA]


def test_data_and_layout_import_no_stage_above_them() -> None:
    files = [*sorted((SRC / "data").rglob("*.py")), SRC / "layout.py"]
    assert len(files) > 20
    assert upward_imports(files, SRC) == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "def f():\n    from lungprior.segment.infer import mask_name\n"
        "import lungprior.masks\nfrom lungprior import cli\n"
    )
    (tmp_path / "ok.py").write_text(
        "from lungprior.data.io import read_mask\nimport lungprior\nfrom lungprior import errors\nimport os.path\n"
    )
    found = upward_imports([tmp_path / "bad.py", tmp_path / "ok.py"], tmp_path)
    assert found == ["bad.py:2: lungprior.segment.infer", "bad.py:3: lungprior.masks", "bad.py:4: lungprior.cli"]
