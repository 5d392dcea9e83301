"""Do the verdicts of a run survive another draw of seeds? Compare two claims tables.

Run the same config twice with disjoint seeds, each into its own results folder, for example

    snakemake --cores all
    snakemake results/seeds4-7/claims.csv --cores all --config 'results=results/seeds4-7' \\
        'experiments={mnist: {seeds: [4, 5, 6, 7]}, scale2d: {seeds: [4, 5, 6, 7]},
        scale1d: {seeds: [4, 5, 6, 7]}}'

then compare their tables row by row (experiment, variant, claim, quantity, condition,
displacement):

    python docs/exploration/seed_sets.py results/claims.csv results/seeds4-7/claims.csv

It prints how often each verdict of the first became each verdict of the second, the rows that
changed, and exits with status 1 if a claim went from holds to reversed or back.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from diffsens.claims import COLUMNS
from diffsens.io import read_table

KEYS = ["experiment", "variant", "claim", "quantity", "condition", "delta"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="claims.csv of one seed set")
    parser.add_argument("second", help="claims.csv of the other")
    args = parser.parse_args()
    first, second = (
        read_table(path, "claims table", columns=COLUMNS) for path in (args.first, args.second)
    )
    both = first.merge(second, on=KEYS, suffixes=("_1", "_2"))
    print(f"{len(both)} rows in both tables ({len(first)} and {len(second)} in each)\n")
    print(pd.crosstab(both.verdict_1, both.verdict_2).to_markdown(), "\n")
    changed = both[both.verdict_1 != both.verdict_2]
    shown = KEYS + [f"{c}_{i}" for i in (1, 2) for c in ("estimate", "low", "high", "verdict")]
    print(changed[shown].to_markdown(index=False, floatfmt=".3g"))
    opposite = {("holds", "reversed"), ("reversed", "holds")}
    flips = [pair in opposite for pair in zip(both.verdict_1, both.verdict_2, strict=True)]
    print(f"\n{sum(flips)} claim(s) went from holds to reversed or back")
    return 1 if any(flips) else 0


if __name__ == "__main__":
    sys.exit(main())
