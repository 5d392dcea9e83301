"""The ``diffsens`` command: the library's measurements outside the workflow.

diffsens measure CHECKPOINT... --data DATA --out CUBE.nc [options]
diffsens show CUBE.nc
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def _checkpoint(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after its file, e.g. ``best.pt`` -> ``best``)."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text).stem, text
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"checkpoint file {path!r} does not exist")
    return name, Path(path)


def _temperatures(values: list[str]) -> int | list[float]:
    """One integer: that many log-spaced temperatures; otherwise the temperatures themselves."""
    if len(values) == 1 and values[0].isdigit():
        return int(values[0])
    try:
        return [float(v) for v in values]
    except ValueError as error:
        raise SystemExit(f"diffsens measure: --temperatures takes numbers ({error})") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsens", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    m = commands.add_parser("measure", help="measure D, G, R of saved checkpoints into a cube")
    m.add_argument("checkpoints", nargs="+", type=_checkpoint, metavar="[NAME=]CHECKPOINT")
    m.add_argument("--data", required=True, help="a prepared dataset file, or a dataset name")
    m.add_argument("--out", required=True, type=Path, help="the cube to write (.nc)")
    m.add_argument("--probes", type=int, default=500, help="number of test images probed")
    m.add_argument("--probe-seed", type=int, default=0)
    m.add_argument("--temperatures", nargs="+", default=["5"], help="a count, or values of T")
    m.add_argument("--cut", type=float, default=3)
    m.add_argument("--interp", default="bilinear", choices=["bilinear", "nearest", "gaussian"])
    m.add_argument("--deformation", default="diffeo", choices=["diffeo", "pixel_move"])
    m.add_argument("--block", type=int, default=None, help="1-D pixel moves stay in blocks")
    m.add_argument("--rectify-noise", action="store_true")
    m.add_argument("--statistic", default="mean", choices=["mean", "median"])
    m.add_argument("--conditions", nargs="+", default=["original", "shuffled"])
    m.add_argument("--seed", type=int, default=0, help="seeds deformations, noise and shuffles")
    m.add_argument("--batch-size", type=int, default=128)
    m.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:N]'")

    s = commands.add_parser("show", help="print a readable summary of a cube")
    s.add_argument("cube", type=Path)
    return parser


def _measure(args) -> None:
    from diffsens.cubes import collect, measure_run, write_netcdf
    from diffsens.data import PreparedData, prepare
    from diffsens.train import describe_device, pick_device

    data = PreparedData.load(args.data) if os.path.exists(args.data) else prepare(args.data)
    device = pick_device(args.device)
    temperatures = None if args.deformation == "pixel_move" else _temperatures(args.temperatures)
    settings = {
        "checkpoints": {name: os.fspath(path) for name, path in args.checkpoints},
        "data": args.data,
        "probes": args.probes,
        "probe_seed": args.probe_seed,
        "temperatures": temperatures,
        "cut": args.cut,
        "interp": args.interp,
        "deformation": args.deformation,
        "block": args.block,
        "rectify_noise": args.rectify_noise,
        "statistic": args.statistic,
        "conditions": args.conditions,
        "batch_size": args.batch_size,
    }
    run = measure_run(
        dict(args.checkpoints),
        data,
        probes=args.probes,
        probe_seed=args.probe_seed,
        temperatures=temperatures,
        conditions=args.conditions,
        seed=args.seed,
        device=device,
        cut=args.cut,
        interp=args.interp,
        deformation=args.deformation,
        block=args.block,
        rectify_noise=args.rectify_noise,
        statistic=args.statistic,
        batch_size=args.batch_size,
    )
    run.attrs["device"] = describe_device(device)
    path = write_netcdf(collect({args.seed: run}, settings), args.out)
    print(f"wrote {path}")


def _show(args) -> None:
    import xarray as xr

    from diffsens.cubes import summary

    if not args.cube.is_file():
        raise SystemExit(f"diffsens show: {args.cube} does not exist")
    with xr.open_dataset(args.cube) as cube:
        print(summary(cube))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from diffsens.runtime import tune_allocator

    tune_allocator()
    {"measure": _measure, "show": _show}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
