"""docs/segmentation.md's QC threshold table states the code's thresholds (`QcThresholds`), every one of them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from lungprior.segment.infer.qc import QC

DOC = Path(__file__).resolve().parents[1] / "docs" / "segmentation.md"


def _table_after(text: str, heading: str) -> list[str]:
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    return [line for line in lines[start:] if line.startswith("|")][: next(
        (k for k, line in enumerate(lines[start:]) if not line.startswith("|")), None)]


def test_first_qc_table_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = _table_after(text, "**QC thresholds**")
    stated = dict(re.findall(r"`(\w+) = ([0-9.]+)`", "\n".join(rows)))
    expected = {k: v for k, v in dataclasses.asdict(QC).items()}
    assert set(stated) == set(expected)
    for name, value in expected.items():
        assert float(stated[name]) == float(value), name
    assert text.index("**QC thresholds**") < text.index("Quality control on real films")
