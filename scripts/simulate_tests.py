"""Level and power of lungprior's paired AUROC tests with one and several films per patient (docs/statistics.md).

    python scripts/simulate_tests.py                    # DeLong and Obuchowski, 400 data sets per row
    python scripts/simulate_tests.py --bootstrap 200    # also the paired patient bootstrap (slower)
"""

from __future__ import annotations

import argparse

from lungprior.evaluate.simulation import level_power_table, markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=400, help="simulated data sets per row")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples (0: no bootstrap column)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(markdown(level_power_table(args.sims, n_resamples=args.bootstrap, seed=args.seed)))


if __name__ == "__main__":
    main()
