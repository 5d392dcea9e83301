"""Which networks and training show the paper's headline on the offline digits (mnist5k)?

For each setting: train with diffsens.train (seeds given), measure init and best at delta = 1 px
(original and channel-shuffled) with diffsens.checkpoints.measure_run, and append one row per
seed to docs/exploration/digits.csv. Rerunning skips the rows already there.

    python docs/exploration/digits.py [NAME ...] [--seeds 0 1]
    python docs/exploration/digits.py --table     # the rows so far, as a markdown table
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from diffsens.checkpoints import measure_run
from diffsens.data import prepare
from diffsens.diffeo import temperature_for_displacement
from diffsens.runtime import tune_allocator
from diffsens.train import train

HERE = Path(__file__).parent
SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
ADAM = {"optimizer": "adam", "lr": 0.002, "weight_decay": 0.0}
SETTINGS = {
    "cnn16_max_adam4": (
        {"name": "simple_cnn", "depth": 4, "width": 16, "pooling": "max"},
        {**ADAM, "epochs": 4, "batch_size": 64},
    ),
    "cnn16_max_adam8_crop": (
        {"name": "simple_cnn", "depth": 4, "width": 16, "pooling": "max"},
        {**ADAM, "epochs": 8, "augmentation": "crop"},
    ),
    "cnn32_max_sgd10_crop": (
        {"name": "simple_cnn", "depth": 4, "width": 32, "pooling": "max"},
        {**SGD, "epochs": 10, "augmentation": "crop"},
    ),
    "lenet_sgd15_crop": ({"name": "lenet"}, {**SGD, "epochs": 15, "augmentation": "crop"}),
    "vgg11bn16_sgd8_crop": (
        {"name": "vgg11_bn", "width": 16},
        {**SGD, "epochs": 8, "augmentation": "crop"},
    ),
    "vgg11bn16_sgd8": ({"name": "vgg11_bn", "width": 16}, {**SGD, "epochs": 8}),
    "resnet18w8_sgd6_crop": (
        {"name": "resnet18", "width": 8},
        {**SGD, "epochs": 6, "augmentation": "crop"},
    ),
    "vgg11bn8_sgd8_crop": (
        {"name": "vgg11_bn", "width": 8},
        {**SGD, "epochs": 8, "augmentation": "crop"},
    ),
    "vgg11bn12_sgd8_crop": (
        {"name": "vgg11_bn", "width": 12},
        {**SGD, "epochs": 8, "augmentation": "crop"},
    ),
    "vgg11bn16_sgd5_crop": (
        {"name": "vgg11_bn", "width": 16},
        {**SGD, "epochs": 5, "augmentation": "crop"},
    ),
}
FIELDS = [
    "setting",
    "seed",
    "train_s",
    "train_error",
    "test_error",
    "probe_first",
    "probe_last",
    "R_first_init",
    "R_first_trained",
    "R_last_init",
    "R_last_trained",
    "R_last_shuffled",
    "R_output_init",
    "R_output_trained",
    "G_last_init",
    "G_last_trained",
    "D_last_init",
    "D_last_trained",
]


def run(name: str, seed: int, data) -> dict:
    spec, training = SETTINGS[name]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        history = train(spec, data, training, out, seed=seed)
        seconds = time.perf_counter() - start
        folder = Path(out) / "checkpoints"
        T = temperature_for_displacement(1.0, 3, data.input_size)
        cube = measure_run(
            {"init": folder / "init.pt", "best": folder / "best.pt"},
            data,
            {"probes": 200, "temperatures": [T], "device": "cpu"},
            seed=seed,
        ).isel(temperature=0)
    layers = [str(layer) for layer in cube.layer.values]
    first, last = layers[0], layers[-2]
    value = lambda q, layer, checkpoint, condition="original": float(  # noqa: E731
        cube[q].sel(layer=layer, checkpoint=checkpoint, condition=condition)
    )
    best_epoch = int(history.attrs["best_epoch"])
    return {
        "setting": name,
        "seed": seed,
        "train_s": round(seconds, 1),
        "train_error": round(float(history.train_error.sel(epoch=best_epoch)), 4),
        "test_error": round(float(cube.test_error.sel(checkpoint="best")), 4),
        "probe_first": first,
        "probe_last": last,
        "R_first_init": value("R", first, "init"),
        "R_first_trained": value("R", first, "best"),
        "R_last_init": value("R", last, "init"),
        "R_last_trained": value("R", last, "best"),
        "R_last_shuffled": value("R", last, "best", "shuffled"),
        "R_output_init": value("R", "output", "init"),
        "R_output_trained": value("R", "output", "best"),
        "G_last_init": value("G", last, "init"),
        "G_last_trained": value("G", last, "best"),
        "D_last_init": value("D", last, "init"),
        "D_last_trained": value("D", last, "best"),
    }


def markdown(table: Path) -> str:
    """One line per setting and seed: test error, R at the first and last hidden probe point
    (init -> trained), R there with channels shuffled, G at the last point."""
    lines = [
        "| setting | seed | train s | test error | R first | R last | R last shuffled | G last |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with table.open() as f:
        for r in csv.DictReader(f):
            lines.append(
                f"| {r['setting']} | {r['seed']} | {r['train_s']} | {float(r['test_error']):.3f} "
                f"| {r['R_first_init']} -> {r['R_first_trained']} "
                f"| {r['R_last_init']} -> {r['R_last_trained']} | {r['R_last_shuffled']} "
                f"| {r['G_last_init']} -> {r['G_last_trained']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--table", action="store_true", help="print the markdown table")
    args = parser.parse_args()
    table = HERE / "digits.csv"
    if args.table:
        print(markdown(table))
        return
    tune_allocator()
    done = set()
    if table.exists():
        with table.open() as f:
            done = {(row["setting"], int(row["seed"])) for row in csv.DictReader(f)}
    data = prepare("mnist5k", n_test=1000)
    for name in args.names:
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            row = run(name, seed, data)
            new = not table.exists()
            with table.open("a", newline="") as f:
                writer = csv.DictWriter(f, FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(
                    {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
                )
            print(row, flush=True)


if __name__ == "__main__":
    main()
