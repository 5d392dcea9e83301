"""The NetCDF cubes: one file per (experiment, variant) holding every sensitivity of every seed.

A cube has dims ``seed x checkpoint x condition x layer x temperature`` with variables ``D``,
``G``, ``R``, ``num_D``, ``num_G`` (``den`` has no temperature), the test error of each seed's
checkpoints, coordinates for layer names and depth, temperature and typical displacement delta,
and provenance attributes (settings, dataset, git commit, package versions, device, date).

:func:`measure_run` makes one seed's slice from its checkpoints; :func:`collect` stacks the seeds;
both the workflow and the ``diffsens`` command use them, so their files are the same.
Files are written atomically: a reader (or a workflow manager deciding what to rerun) never sees
a half-written file under the final name, even if the writer is killed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from diffsens._io import write_netcdf
from diffsens.data import PreparedData, probe_set
from diffsens.diffeo import log_spaced_temperatures
from diffsens.pooling import shuffle_channels
from diffsens.sensitivity import measure
from diffsens.train import load_checkpoint

__all__ = ["CONDITIONS", "collect", "measure_run", "provenance", "summary", "write_netcdf"]

CONDITIONS = ("original", "shuffled")
_PACKAGES = ("diffsens", "torch", "torchvision", "numpy", "xarray", "netCDF4")


def measure_run(
    checkpoints: Mapping[str, str | os.PathLike],
    data: PreparedData,
    *,
    probes: int = 500,
    probe_seed: int = 0,
    temperatures: int | Sequence[float] | None = 5,
    conditions: Sequence[str] = CONDITIONS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **options,
) -> xr.Dataset:
    """Sensitivities of one training run: ``checkpoint x condition x layer x temperature``.

    ``checkpoints`` maps names ("init", "best", ...) to checkpoint files; every checkpoint is
    probed at its model's ``probe_points`` on the same ``probes`` test images. ``temperatures``
    is a count (log-spaced over [T_min, T_max] for the images' size and ``cut``) or explicit
    values; ``None`` with ``deformation="pixel_move"``. ``"shuffled"`` measures the net with its
    conv input channels permuted (:func:`diffsens.pooling.shuffle_channels`). ``seed`` seeds the
    deformations, the noise and the shuffle. ``options`` go to :func:`diffsens.sensitivity.measure`.
    """
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown or not conditions:
        raise ValueError(
            f"conditions must be a non-empty subset of {list(CONDITIONS)}, got {list(conditions)}"
        )
    images, _ = probe_set(data, probes, seed=probe_seed)
    if isinstance(temperatures, int) and not isinstance(temperatures, bool):
        temperatures = log_spaced_temperatures(
            images.shape[-1], options.get("cut", 3), temperatures
        )
    by_checkpoint, test_errors, epochs = [], [], {}
    for name, path in checkpoints.items():
        model, checkpoint = load_checkpoint(path, device)
        by_condition = []
        for condition in conditions:
            net = model if condition == "original" else shuffle_channels(model, seed=seed)
            by_condition.append(
                measure(
                    net,
                    images,
                    temperatures=temperatures,
                    layers=model.probe_points,
                    seed=seed,
                    **options,
                )
            )
        by_checkpoint.append(xr.concat(by_condition, pd.Index(list(conditions), name="condition")))
        test_errors.append(checkpoint["test_error"])
        epochs[name] = checkpoint["epoch"]
    run = xr.concat(
        by_checkpoint, pd.Index(list(checkpoints), name="checkpoint"), combine_attrs="override"
    )
    run["test_error"] = ("checkpoint", np.asarray(test_errors, dtype=np.float64))
    run.test_error.attrs = {"long_name": "test error of the checkpoint", "units": "1"}
    run["epoch"] = ("checkpoint", np.asarray(list(epochs.values()), dtype=np.int64))
    run.epoch.attrs = {"long_name": "training epoch of the checkpoint", "units": "1"}
    run.attrs.update(dataset=data.name, probes=probes, probe_seed=probe_seed)
    return run


def collect(runs: Mapping[int, xr.Dataset], settings: Mapping | None = None) -> xr.Dataset:
    """Stack one :func:`measure_run` result per seed into a cube, with provenance attributes."""
    if not runs:
        raise ValueError("collect needs at least one run")
    seeds = sorted(runs)
    first = runs[seeds[0]]
    for seed in seeds[1:]:
        for coord in ("layer", "temperature", "checkpoint", "condition"):
            if not np.array_equal(
                runs[seed][coord].values, first[coord].values, equal_nan=coord == "temperature"
            ):
                raise ValueError(f"seed {seed} was measured on other {coord}s than seed {seeds[0]}")
    devices = sorted({runs[seed].attrs.get("device", "unknown") for seed in seeds})
    cube = xr.concat(
        [runs[seed] for seed in seeds], pd.Index(seeds, name="seed"), combine_attrs="override"
    )
    cube.attrs.pop("seed", None)  # each run's own; the cube has a seed axis
    cube.attrs.update(provenance(settings or {}))
    cube.attrs["device"] = ", ".join(devices)
    return cube


def provenance(settings: Mapping) -> dict:
    """Attributes that say how a result was made: settings, code version, packages, date."""
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "settings": json.dumps(settings, sort_keys=True),
        "git_commit": _git_commit(),
        "versions": json.dumps(versions),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _git_commit() -> str:
    """The commit of the diffsens source tree in use, with ``-dirty`` for local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("-dirty" if dirty else "")


def summary(cube: xr.Dataset) -> str:
    """A readable account of a cube: what it holds, how it was made, R by layer."""
    lines = [f"dims: {dict(cube.sizes)}"]
    for key in ("dataset", "git_commit", "device", "created"):
        if key in cube.attrs:
            lines.append(f"{key}: {cube.attrs[key]}")
    if "test_error" in cube:
        error = cube.test_error.mean("seed") if "seed" in cube.dims else cube.test_error
        lines.append(
            "test error (mean over seeds): "
            + ", ".join(f"{c}={float(error.sel(checkpoint=c)):.4f}" for c in cube.checkpoint.values)
        )
    T = cube.temperature.values
    middle = len(T) // 2
    lines.append(
        f"R = D / G by layer at T = {T[middle]:.3g} (delta = {float(cube.delta[middle]):.2f} px), "
        "mean over seeds:"
    )
    R = cube.R.isel(temperature=middle)
    if "seed" in R.dims:
        R = R.mean("seed")
    table = R.to_dataframe().R.unstack(level=[d for d in R.dims if d != "layer"])
    table = table.reindex(cube.layer.values)
    lines.append(table.to_string(float_format=lambda v: f"{v:.3g}"))
    return "\n".join(lines)
