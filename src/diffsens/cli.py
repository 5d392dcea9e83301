"""The diffsens command: the library's measurements outside the workflow.

diffsens measure CHECKPOINT... --data DATA --out CUBE.nc [--model SPEC] [options]
diffsens show CUBE.nc [--delta PIXELS]
diffsens claims CUBE.nc... [--ceiling ERROR] [--delta PIXELS] [--out CLAIMS.csv]
diffsens cost CONFIG.yaml [--calibration TABLE.csv]
diffsens calibrate CONFIG.yaml --out TABLE.csv [--device DEVICE] [--steps N]
diffsens check-config CONFIG.yaml

The options of ``measure`` are the ``measure`` settings of the schema (diffsens.settings), with
its types, choices, defaults and descriptions.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
from pathlib import Path

import jsonschema
import yaml

from diffsens import settings
from diffsens.cost import CALIBRATION_STEPS

__all__ = ["main"]

_POSITIONAL = ("checkpoints",)
"""Measure settings given as positional arguments rather than options."""


def _checkpoint(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after its file, e.g. ``best.pt`` -> ``best``)."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text).stem, text
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"checkpoint file {path!r} does not exist")
    return name, Path(path)


_TYPES = {"integer": int, "number": float}
"""Python types of the schema's numeric types; anything else is read as a string."""


def _add_setting(parser: argparse.ArgumentParser, key: str, spec: dict) -> None:
    """One option for one setting, typed by its schema; left out of the parsed arguments when
    not given, so that the library tells a setting given from its default."""
    kinds = spec.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    option = {"dest": key, "default": argparse.SUPPRESS}
    if "oneOf" in spec:  # a scalar or a list (temperatures: a count or values)
        option.update(nargs="+", metavar="VALUE")
    elif "boolean" in kinds:
        option.update(action=argparse.BooleanOptionalAction)
    elif "array" in kinds:
        items = spec["items"]
        option.update(nargs="+", choices=items.get("enum"), type=_TYPES.get(items.get("type"), str))
    elif "enum" in spec:
        option.update(choices=spec["enum"])
    else:
        option.update(type=_TYPES.get(next(iter(kinds - {"null"})), str))
    help_text = f"{spec['description'].strip()} (default: {spec['default']})"
    parser.add_argument(f"--{key.replace('_', '-')}", help=help_text.replace("%", "%%"), **option)


def _error_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an error rate: expected a fraction in (0, 1], e.g. 0.1 for 10%"
        )
    return value


def _model_spec(text: str) -> dict:
    """``NAME`` or a YAML mapping ``{name: NAME, option: value, ...}``."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError:
        spec = None
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a model name or a YAML mapping with a name ({{name: vgg11_bn}})"
        )
    return spec


def _one_of(values, spec: dict):
    """Values of a scalar-or-list option, read as YAML: one value of a scalar branch's type
    (one integer: a count of temperatures) stands alone, anything else is a list."""
    parsed = [yaml.safe_load(value) for value in values] if isinstance(values, list) else values
    if not isinstance(parsed, list):
        return parsed
    types = [{"type": b["type"]} for b in spec["oneOf"] if b.get("type") != "array"]
    if len(parsed) == 1 and any(
        jsonschema.Draft202012Validator(t).is_valid(parsed[0]) for t in types
    ):
        return parsed[0]
    return parsed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsens", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    m = commands.add_parser("measure", help="measure D, G, R of saved checkpoints into a cube")
    m.add_argument(
        "checkpoints",
        nargs="+",
        type=_checkpoint,
        metavar="[NAME=]CHECKPOINT",
        help="checkpoint files of one training run (diffsens checkpoints, or plain state dicts "
        "with --model), each named NAME in the cube (default: its file name without .pt)",
    )
    m.add_argument(
        "--data",
        required=True,
        help="the probe set: a prepared dataset file (results/data/NAME.pt), a folder of images "
        "(train/ and test/ of class folders, prepared for the checkpoint's network), or a "
        "dataset source name prepared with its default settings",
    )
    m.add_argument("--out", required=True, type=Path, help="the cube to write (.nc)")
    m.add_argument(
        "--model",
        type=_model_spec,
        default=None,
        metavar="SPEC",
        help="the network of checkpoints that are plain state dicts: a model name "
        "(vgg11_bn, torchvision:resnet18, package.module:function) or a YAML mapping with its "
        "options ('{name: vgg11_bn, width: 16}'); diffsens checkpoints name their own",
    )
    m.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seeds deformations, noise and shuffles (default: the checkpoints' training seed)",
    )
    m.add_argument(
        "--other-data",
        action="store_true",
        help="allow probing data other than the checkpoints' training data",
    )
    for key, spec in settings.group("measure")["properties"].items():
        if key not in _POSITIONAL:
            _add_setting(m, key, spec)

    s = commands.add_parser("show", help="print what a cube holds and D, G, R by layer")
    s.add_argument("cube", type=Path, help="a cube (.nc) of the workflow or of diffsens measure")
    s.add_argument(
        "--delta",
        type=float,
        default=settings.defaults("analysis")["delta"],
        help="typical displacement in pixels: the table is at the measured temperature nearest "
        "it (default: %(default)s)",
    )

    a = commands.add_parser("claims", help="test the paper's claims on cubes of several seeds")
    a.add_argument(
        "cubes",
        nargs="+",
        type=Path,
        metavar="CUBE",
        help="cubes (.nc) of the workflow or of diffsens measure; cubes made with the same "
        "settings are the seeds of one variant",
    )
    a.add_argument(
        "--ceiling",
        type=_error_rate,
        default=None,
        help="test error (a fraction, 0.1 for 10%%) above which a trained net is left out as "
        "undertrained (default: none)",
    )
    a.add_argument(
        "--delta",
        type=float,
        default=settings.defaults("analysis")["delta"],
        help="typical displacement in pixels of the table at a glance (default: %(default)s)",
    )
    a.add_argument("--out", type=Path, default=None, help="also write the table as CSV")

    g = commands.add_parser(
        "cost", help="count a config's work and project its GPU-hours before running it"
    )
    g.add_argument("config", type=Path, help="a workflow config (YAML)")
    g.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="seconds per training and per inference image of each network, measured on the "
        "device the grid will use (CSV: network,train_image_s,inference_image_s); networks "
        "without a row get the conservative model's",
    )

    b = commands.add_parser(
        "calibrate", help="time each network of a config on this device, for diffsens cost"
    )
    b.add_argument("config", type=Path, help="a workflow config (YAML)")
    b.add_argument("--out", type=Path, required=True, help="the calibration table to write (CSV)")
    b.add_argument(
        "--device",
        default="auto",
        help="where to time the networks: auto (CUDA when present), cpu, cuda or cuda:N "
        "(default: %(default)s)",
    )
    b.add_argument(
        "--steps",
        type=int,
        default=CALIBRATION_STEPS,
        help="training steps timed per network (default: %(default)s)",
    )

    c = commands.add_parser(
        "check-config", help="check a workflow config file, as the workflow does before any job"
    )
    c.add_argument("config", type=Path, help="a workflow config (YAML)")
    return parser


def _load_data(text: str, checkpoint: Path):
    """A prepared dataset file, a dataset source, or a folder of images (train/ and test/ of
    class folders), prepared for the network of ``checkpoint``: its input size and channels and,
    had it been trained on images of a folder, their resizing and normalisation."""
    from diffsens.data import DATASETS, PreparedData, prepare
    from diffsens.io import load_torch

    if os.path.isfile(text):
        return PreparedData.load(text)
    if text in DATASETS:
        return prepare(text)
    if os.path.isdir(text):
        saved = load_torch(checkpoint, "checkpoint", state_dict=True)
        settings = {}
        if "data_shape" in saved:  # a diffsens checkpoint: the network's inputs
            shape = saved["data_shape"]
            settings = {"crop": shape["input_size"], "channels": shape["in_channels"]}
            trained_on = saved["dataset"]["settings"]
            if saved["dataset"]["name"] == "image_folder":
                settings.update({k: trained_on[k] for k in ("resize", "mean", "std")})
        return prepare("image_folder", root=text, **settings)
    raise FileNotFoundError(
        f"--data: {text!r} is neither a file (no such file), a folder of images (train/ and "
        f"test/ of class folders) nor a dataset source ({', '.join(sorted(DATASETS))})"
    )


def _measure(args) -> None:
    from diffsens.checkpoints import measure_run
    from diffsens.cubes import collect, write_netcdf

    group = settings.group("measure")["properties"]
    values = {key: value for key, value in vars(args).items() if key in group}
    given = settings.given_conflicts(values)  # only the options given: the defaults come later
    if given:
        raise settings.SettingsError([f"{key}: {problem}" for key, problem in given])
    for key, spec in group.items():
        if "oneOf" in spec and key in values:
            values[key] = _one_of(values[key], spec)
    names = [name for name, _ in args.checkpoints]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"several checkpoints are named {twice}: name each, e.g. a=PATH b=PATH")
    inputs = [Path(path).resolve() for _, path in args.checkpoints] + [Path(args.data).resolve()]
    if args.out.resolve() in inputs:
        raise ValueError(f"--out {args.out} is one of the inputs; choose another file")
    data = _load_data(args.data, Path(args.checkpoints[0][1]))
    run = measure_run(
        dict(args.checkpoints),
        data,
        values,
        seed=args.seed,
        other_data=args.other_data,
        model=args.model,
    )
    path = write_netcdf(collect({run.attrs["training_seed"]: run}), args.out)
    print(f"wrote {path}")


def _show(args) -> None:
    from diffsens.cubes import summary
    from diffsens.io import open_cubes

    (cube,) = open_cubes([args.cube]).values()
    print(summary(cube, args.delta))


def _claims(args) -> None:
    from diffsens.claims import ExperimentResults, claims_markdown, evaluate_claims
    from diffsens.cubes import merge_seeds
    from diffsens.io import CUBE_VARIABLES, open_netcdf, write_table
    from diffsens.provenance import RunSettings

    # cubes made alike are the seeds of one variant; variants of one experiment (or, outside the
    # workflow, of one dataset) are compared with each other
    grouped: dict[str, dict[str, dict]] = {}
    for path in args.cubes:
        cube = open_netcdf(path, "cube", variables=CUBE_VARIABLES)
        made = RunSettings.from_attrs(cube.attrs, str(path))
        experiment = made.experiment or made.dataset.get("name", "cubes")
        key = str((made.model, made.training, made.dataset, made.measure))
        grouped.setdefault(experiment, {}).setdefault(key, {})[str(path)] = cube
    experiments = {}
    for experiment, by_settings in grouped.items():
        variants = {}
        for cubes in by_settings.values():
            path, cube = next(iter(cubes.items()))
            name = RunSettings.from_attrs(cube.attrs).variant or Path(path).stem
            variants[name if name not in variants else f"{name}_{len(variants)}"] = merge_seeds(
                cubes
            )
        experiments[experiment] = ExperimentResults(variants, ceiling=args.ceiling)
    table = evaluate_claims(experiments)
    print(claims_markdown(table, args.delta))
    if args.out is not None:
        write_table(table, args.out)
        print(f"wrote {args.out}")


def _cost(args) -> None:
    from diffsens.config import Config, read_yaml
    from diffsens.cost import cost_line, cost_markdown, estimate_cost, read_calibration

    calibration = read_calibration(args.calibration) if args.calibration else None
    table = estimate_cost(Config(read_yaml(args.config)), calibration)
    print(cost_markdown(table), end="")
    print(f"{args.config}: {cost_line(table, calibration or ())}")


def _calibrate(args) -> None:
    from diffsens.config import Config, read_yaml
    from diffsens.cost import calibrate, calibration_networks
    from diffsens.io import write_table

    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    networks = calibration_networks(Config(read_yaml(args.config)))
    table = calibrate(networks, args.device, args.steps)
    write_table(table, args.out)
    print(f"wrote {args.out} ({len(table)} networks)")


def _check_config(args) -> None:
    from diffsens.config import Config, read_yaml

    config = Config(read_yaml(args.config))
    experiments = config.raw["experiments"]
    trainings = sum(len(config.variants(e)) * len(config.seeds(e)) for e in experiments)
    print(
        f"{args.config}: valid ({len(config.datasets)} datasets, {len(experiments)} experiments, "
        f"{trainings} trainings)"
    )


def main(argv: list[str] | None = None) -> None:
    if argv is None:  # the command, not a call: die quietly when a pipe closes (| head)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = _parser().parse_args(argv)
    from diffsens.io import CorruptedFile
    from diffsens.runtime import tune_allocator

    tune_allocator()
    commands = {
        "measure": _measure,
        "show": _show,
        "claims": _claims,
        "cost": _cost,
        "calibrate": _calibrate,
        "check-config": _check_config,
    }
    command = commands[args.command]
    try:
        command(args)
    except (
        settings.SettingsError,
        CorruptedFile,
        FileNotFoundError,
        ValueError,
        TypeError,
    ) as error:
        raise SystemExit(f"diffsens {args.command}: {error}") from None


if __name__ == "__main__":
    main()
