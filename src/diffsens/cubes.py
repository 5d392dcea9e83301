"""The NetCDF cubes: one file per (experiment, variant) holding every sensitivity of every seed.

A cube has dims ``seed x checkpoint x condition x layer x temperature`` with variables ``D``,
``G``, ``R``, ``num_D``, ``num_G`` (``den`` has no temperature), the test error and epoch of each
seed's checkpoints, coordinates for layer names and depth, temperature and typical displacement
delta, and attributes saying what it was made from (:class:`diffsens.provenance.RunSettings`:
model, training, dataset, measure, experiment, variant) and with (git commit, package versions,
device, date). docs/formats.md describes the layout.

:func:`collect` stacks the seeds' runs (:func:`diffsens.checkpoints.measure_run`) into a cube,
:func:`merge_seeds` joins cubes of other seeds, :func:`summary` reads one back. None needs
torch, so reading cubes takes a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from diffsens.io import write_netcdf
from diffsens.provenance import RunSettings, software

__all__ = ["collect", "layer_names", "merge_seeds", "summary", "test_error_of", "write_netcdf"]


def layer_names(ds: xr.Dataset) -> list[str]:
    """The readable names of the layers of ``ds``: their ``label`` coordinate (``relu2`` for a
    module path ``features.4``), or their paths in a cube measured before labels existed."""
    names = ds["label"] if "label" in ds.coords else ds.layer
    return [str(name) for name in names.values]


def collect(
    runs: Mapping[int, xr.Dataset], *, experiment: str = "", variant: str = ""
) -> xr.Dataset:
    """Stack one :func:`measure_run` result per training seed into a cube (the ``seed`` axis),
    with provenance attributes and the seed each run was measured with (``measure_seed``)."""
    if not runs:
        raise ValueError("collect needs at least one run")
    seeds = sorted(runs)
    first = runs[seeds[0]]
    settings = RunSettings.from_attrs(first.attrs, f"the run of seed {seeds[0]}")
    for seed in seeds[1:]:
        for coord in ("layer", "temperature", "checkpoint", "condition"):
            if not np.array_equal(
                runs[seed][coord].values, first[coord].values, equal_nan=coord == "temperature"
            ):
                raise ValueError(f"seed {seed} was measured on other {coord}s than seed {seeds[0]}")
        other = RunSettings.from_attrs(runs[seed].attrs, f"the run of seed {seed}")
        if other != settings:
            raise ValueError(f"seed {seed} was made with other settings than seed {seeds[0]}")
    devices = sorted({runs[seed].attrs.get("device", "unknown") for seed in seeds})
    cube = xr.concat(
        [runs[seed] for seed in seeds], pd.Index(seeds, name="seed"), combine_attrs="override"
    )
    measured_with = [runs[seed].attrs.get("seed", seed) for seed in seeds]
    cube = cube.assign_coords(measure_seed=("seed", np.asarray(measured_with, dtype=np.int64)))
    cube.measure_seed.attrs = {"long_name": "seed of the deformations, noise and shuffles"}
    cube.seed.attrs = {"long_name": "training seed"}
    for key in ("seed", "training_seed"):  # each run's own; the cube has a seed axis
        cube.attrs.pop(key, None)
    named = RunSettings(**{**vars(settings), "experiment": experiment, "variant": variant})
    at_chance = sorted(
        {c for seed in seeds for c in json.loads(runs[seed].attrs.get("at_chance", "[]"))}
    )
    cube.attrs.update(
        named.to_attrs(),
        **software(),
        device=", ".join(devices),
        at_chance=json.dumps(at_chance),  # in any seed
    )
    return cube


def merge_seeds(cubes: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """One cube from cubes (or single runs, the workflow's ``sensitivity.nc``) of one variant
    measured on other training seeds, by source name: their runs, collected again
    (:func:`collect` checks that they were made and measured alike)."""
    runs: dict[int, xr.Dataset] = {}
    sources: dict[int, str] = {}
    for source, cube in cubes.items():
        for seed, run in _runs(cube, source):
            if seed in runs:
                raise ValueError(f"training seed {seed} is in both {sources[seed]} and {source}")
            runs[seed], sources[seed] = run, source
    settings = RunSettings.from_attrs(next(iter(cubes.values())).attrs)
    return collect(runs, experiment=settings.experiment, variant=settings.variant)


def _runs(cube: xr.Dataset, source: str):
    """``(training seed, run)`` of each seed of a cube, or of a single run."""
    if "seed" not in cube.dims:
        if "training_seed" not in cube.attrs:
            raise ValueError(f"{source} does not say which training seed it was measured on")
        yield int(cube.attrs["training_seed"]), cube
        return
    for seed in map(int, cube.seed.values):
        run = cube.sel(seed=seed).drop_vars(["seed", "measure_seed"])
        run.attrs = {**cube.attrs, "seed": int(cube.measure_seed.sel(seed=seed))}
        yield seed, run


def test_error_of(cube: xr.Dataset, condition: str) -> xr.DataArray | None:
    """The test error that goes with a measured condition: the noisy test set's for ``noisy``,
    the net's own for ``original`` and ``channel_mean`` (the same net, probed otherwise), none
    for ``shuffled`` (that net is not evaluated)."""
    if condition == "noisy":
        return cube.get("noisy_test_error")
    return None if condition == "shuffled" else cube.test_error


def summary(cube: xr.Dataset, delta: float = 1.0) -> str:
    """A readable account of a cube: what it holds, how it was made, and D, G, R by layer at the
    measured temperature nearest a typical displacement of ``delta`` pixels (mean over seeds)."""
    from diffsens.fits import at_delta

    settings = RunSettings.from_attrs(cube.attrs)
    lines = [f"dims: {dict(cube.sizes)}"]
    if settings.experiment:
        lines.append(f"experiment: {settings.experiment}, variant: {settings.variant}")
    lines.append(f"model: {settings.model}")
    lines.append(f"dataset: {settings.dataset['name']} {settings.dataset['settings']}")
    if "training_dataset" in cube.attrs:
        trained_on = json.loads(cube.attrs["training_dataset"])
        lines.append(f"trained on other data: {trained_on['name']} {trained_on['settings']}")
    for key in ("git_commit", "device", "created"):
        if key in cube.attrs:
            lines.append(f"{key}: {cube.attrs[key]}")
    if "test_error" in cube:
        error = cube.test_error.mean("seed") if "seed" in cube.dims else cube.test_error
        lines.append(
            "test error (mean over seeds): "
            + ", ".join(f"{c}={float(error.sel(checkpoint=c)):.4f}" for c in cube.checkpoint.values)
        )
    at_chance = json.loads(cube.attrs.get("at_chance", "[]"))
    if at_chance:
        lines.append(
            f"WARNING: checkpoint(s) {at_chance} are at chance on these data: their D, G and R "
            "describe networks that do not work here (trained on other preprocessing?)"
        )
    sliced = at_delta(cube, delta)
    if "seed" in sliced.dims:
        sliced = sliced.mean("seed")
    temperature = float(sliced.temperature)
    at = "one-pixel moves" if np.isnan(temperature) else f"T = {temperature:.3g}"
    lines.append(
        f"D, G and R = D / G by layer at {at} (delta = {float(sliced.delta):.2f} px, the measured "
        f"one nearest {delta:g} px), mean over seeds (R of each seed, then averaged):"
    )
    noisy = "condition" in sliced.dims and "noisy" in sliced.condition.values
    if noisy and not settings.training.get("training_noise", 0.0):
        lines.append("noisy: the probes with the net's training noise, none here, so as original")
    table = (
        sliced[["D", "G", "R"]]
        .to_dataframe()[["D", "G", "R"]]
        .unstack(level=[d for d in ("checkpoint", "condition") if d in sliced.dims])
    )
    table = table.reindex(sliced.layer.values)
    table.index = pd.Index(layer_names(sliced), name="layer")
    lines.append(table.to_string(float_format=lambda v: f"{v:.3g}"))
    return "\n".join(lines)
