"""Level, power and CI coverage of lungprior's default paired AUROC tests on simulated studies.

    python scripts/simulate_tests.py                 # print both tables (1,000 null data sets per design)
    python scripts/simulate_tests.py --write         # and replace them in docs/statistics.md

The testability table (the default test's level by the number of patients with the finding) justifies
`MIN_POS_PATIENTS` / `MIN_NEG_PATIENTS`; the level table runs every design through `compare`'s row functions.
About 20 minutes on two shared CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lungprior.evaluate.level_table import level_table, markdown, smallest_safe, sweep_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "statistics.md"
MARKERS = {"testability": "testability-table", "level": "level-table"}


def replace_block(text: str, name: str, body: str) -> str:
    """Replace the text between <!-- NAME:start --> and <!-- NAME:end --> with `body`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{DOC}: markers {start} / {end} not found")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="null data sets per design (and per count)")
    parser.add_argument("--alt", type=int, default=400, help="data sets per design under the alternative")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write the tables into docs/statistics.md")
    args = parser.parse_args()
    sweep = sweep_table(args.sims, args.seed)
    sweep_md = markdown(sweep) + f"\n\nSmallest safe minimum: {smallest_safe(sweep)} patients."
    print(sweep_md, flush=True)
    level_md = markdown(level_table(args.sims, args.alt, args.seed))
    print(level_md)
    if args.write:
        text = DOC.read_text(encoding="utf-8")
        text = replace_block(text, MARKERS["testability"], sweep_md)
        DOC.write_text(replace_block(text, MARKERS["level"], level_md), encoding="utf-8")


if __name__ == "__main__":
    main()
