"""What a grid costs: trainings, epochs and measurements per network of a config, and, given
measured seconds per epoch and per measurement, its projected GPU-hours (issue 12).

    python benchmarks/grid_cost.py config/paper.yaml                     # counts only
    python benchmarks/grid_cost.py config/paper.yaml --seconds gpu.csv   # and GPU-hours

``gpu.csv`` has one row per network: ``network,epoch_s,measure_s``, where ``network`` is the
name this script prints, ``epoch_s`` the seconds of one training epoch on the network's dataset
and ``measure_s`` the seconds of measuring one checkpoint in one condition with the config's
probes and temperatures, both measured on the GPU the grid will run on. Networks missing from
the file are listed with their counts and no hours, and named on stderr.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict

from diffsens.config import Config, read_yaml


def network_name(dataset: str, model: dict) -> str:
    """``dataset:name(option=value, ...)`` with the options that differ from the defaults."""
    options = {key: value for key, value in model.items() if key != "name"}
    text = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))
    return f"{dataset}:{model['name']}" + (f"({text})" if text else "")


def grid_counts(config: Config) -> dict[str, dict[str, int]]:
    """Per network: trainings (one per variant and seed), epochs, and measurements (one per
    checkpoint and condition of every training)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for experiment in config.raw["experiments"]:
        seeds = len(config.seeds(experiment))
        for variant in config.variants(experiment):
            settings = config.variant(experiment, variant)
            measure = settings["measure"]
            name = network_name(config.dataset_of(experiment), settings["model"])
            counts[name]["trainings"] += seeds
            counts[name]["epochs"] += seeds * settings["training"]["epochs"]
            counts[name]["measurements"] += (
                seeds * len(measure["checkpoints"]) * len(measure["conditions"])
            )
    return {name: dict(row) for name, row in counts.items()}


def cost_table(counts: dict[str, dict[str, int]], seconds: dict[str, dict[str, float]]) -> str:
    """The markdown table of counts and hours, with the total of the networks that were timed."""
    lines = [
        "| network | trainings | epochs | measurements | s / epoch | s / measurement | GPU-hours |",
        "|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    for name, row in sorted(counts.items()):
        timed = seconds.get(name)
        hours, per_epoch, per_measurement = "", "", ""
        if timed:
            per_epoch, per_measurement = timed["epoch_s"], timed["measure_s"]
            value = (
                row["epochs"] * timed["epoch_s"] + row["measurements"] * timed["measure_s"]
            ) / 3600
            total += value
            hours = f"{value:.2f}"
        lines.append(
            f"| `{name}` | {row['trainings']} | {row['epochs']} | {row['measurements']} | "
            f"{per_epoch} | {per_measurement} | {hours} |"
        )
    lines.append(
        f"| **total** | {sum(r['trainings'] for r in counts.values())} | "
        f"{sum(r['epochs'] for r in counts.values())} | "
        f"{sum(r['measurements'] for r in counts.values())} | | | {total:.1f} |"
    )
    return "\n".join(lines)


def read_seconds(path: str) -> dict[str, dict[str, float]]:
    with open(path, newline="") as f:
        return {
            row["network"]: {"epoch_s": float(row["epoch_s"]), "measure_s": float(row["measure_s"])}
            for row in csv.DictReader(f)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seconds", help="CSV of network,epoch_s,measure_s")
    args = parser.parse_args()
    config = Config(read_yaml(args.config), against_data=False)
    counts = grid_counts(config)
    seconds = read_seconds(args.seconds) if args.seconds else {}
    missing = sorted(set(counts) - set(seconds))
    if args.seconds and missing:
        print(f"no timing for: {', '.join(missing)}", file=sys.stderr)
    print(cost_table(counts, seconds))


if __name__ == "__main__":
    main()
