"""Depth laws fitted to layer-wise sensitivities, with bootstrap intervals over seeds.

Two laws, by least squares on log values (docs/science.md §9):

* ``"power"``: y_k = A k^a, fitted as log y = a log k + log A (stride-1 nets);
* ``"exponential"``: y_k = A exp(a k), fitted as log y = a k + log A (strided nets; exp(a) is
  the factor per layer, e.g. 1/2 for D_k ~ 2^-k).

The exponent ``a`` comes with a percentile bootstrap interval: seeds are resampled with
replacement, averaged, and refitted.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from diffsens.cubes import layer_names
from diffsens.laws import LAWS, QUANTITIES, model_law
from diffsens.provenance import RunSettings

__all__ = [
    "LawFit",
    "at_delta",
    "depth_series",
    "fit_cube",
    "fit_experiment",
    "fit_law",
    "fit_layers",
    "fit_table",
    "trained_checkpoint",
    "trained_error",
]


class LawFit(NamedTuple):
    """A law fitted through points: ``y_k = prefactor * k^exponent`` or ``* exp(exponent k)``."""

    exponent: float
    prefactor: float
    stderr: float
    """Standard error of the exponent from the scatter about the line (NaN through 2 points)."""


def fit_law(k: np.ndarray, y: np.ndarray, law: str) -> LawFit:
    """``law`` through the points ``(k, y)`` with ``y > 0``, by least squares on ``log y``."""
    if law not in LAWS:
        raise ValueError(f"law must be one of {list(LAWS)}, got {law!r}")
    k, y = np.asarray(k, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 2:
        return LawFit(np.nan, np.nan, np.nan)
    x = np.log(k[keep]) if law == "power" else k[keep]
    logs = np.log(y[keep])
    slope, intercept = np.polyfit(x, logs, 1)
    n = len(x)
    residuals = logs - (slope * x + intercept)
    spread = ((x - x.mean()) ** 2).sum()
    stderr = math.sqrt((residuals @ residuals) / (n - 2) / spread) if n > 2 else np.nan
    return LawFit(float(slope), float(np.exp(intercept)), stderr)


def _slopes(k: np.ndarray, rows: np.ndarray, law: str) -> np.ndarray:
    """Exponents of ``law`` through every row of ``rows (n, layers)`` at once."""
    if not (np.isfinite(rows).all() and (rows > 0).all()):
        return np.array([fit_law(k, row, law)[0] for row in rows])
    x = np.log(k) if law == "power" else np.asarray(k, dtype=float)
    x = x - x.mean()
    logs = np.log(rows)
    return (logs - logs.mean(axis=1, keepdims=True)) @ x / (x @ x)


def fit_layers(
    values: xr.DataArray,
    law: str,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Fit ``law`` to ``values`` over its ``layer`` dim (depth from the ``depth`` coordinate).

    ``law="none"`` gives the same layout with every statistic NaN.
    ``values`` may carry a ``seed`` dim: the fit is to the mean over seeds, and the interval
    comes from ``n_boot`` bootstrap resamples of the seeds (NaN with a single seed). Any other
    dims are fitted independently. Returns ``exponent``, ``prefactor``, ``low``, ``high``.
    """
    if law not in (*LAWS, "none"):
        raise ValueError(f"law must be one of {[*LAWS, 'none']}, got {law!r}")
    depth = values["depth"].values

    def fit(block: np.ndarray) -> np.ndarray:
        """``block``: (seeds, layers) -> exponent, prefactor, low, high."""
        if law == "none":  # nothing to fit: keep the layout, every statistic NaN
            return np.full(4, np.nan)
        exponent, prefactor, _ = fit_law(depth, block.mean(axis=0), law)
        if block.shape[0] < 2:
            return np.array([exponent, prefactor, np.nan, np.nan])
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, block.shape[0], size=(n_boot, block.shape[0]))
        boot = _slopes(depth, block[draws].mean(axis=1), law)
        tail = 100 * (1 - confidence) / 2
        low, high = np.nanpercentile(boot, [tail, 100 - tail])
        return np.array([exponent, prefactor, low, high])

    if "seed" not in values.dims:
        values = values.expand_dims("seed")
    result = xr.apply_ufunc(
        fit,
        values,
        input_core_dims=[["seed", "layer"]],
        output_core_dims=[["statistic"]],
        vectorize=True,
        output_sizes={"statistic": 4},
    )
    ds = result.to_dataset("statistic").rename({0: "exponent", 1: "prefactor", 2: "low", 3: "high"})
    ds.attrs.update(law=law, confidence=confidence, n_boot=n_boot, n_seeds=values.sizes["seed"])
    form = {"power": " (y ~ k^a)", "exponential": " (y ~ exp(a k))"}.get(law, ", none fitted")
    ds.exponent.attrs = {"long_name": f"fitted exponent a{form}", "units": "1"}
    return ds


def fit_table(fits: xr.Dataset, ceiling: float | None = None) -> pd.DataFrame:
    """:func:`fit_experiment` as a flat table, one row per fitted curve: the exponent, its
    interval, the prediction and the deviation from it, the law, the checkpoint's test error, and
    whether a trained checkpoint is above the error ``ceiling`` (undertrained)."""
    curves = fits[["exponent", "prefactor", "low", "high"]].to_dataframe().reset_index()
    table = curves.merge(fits.predicted.to_dataframe().reset_index(), how="left")
    table["deviation"] = table["exponent"] - table["predicted"]
    table = table.merge(fits.law.to_dataframe().reset_index(), how="left")
    table = table.merge(fits.test_error.to_dataframe().reset_index(), how="left")
    table["undertrained"] = (table.checkpoint != "init") & (
        table.test_error > (np.inf if ceiling is None else ceiling)
    )
    return table


def depth_series(ds: xr.Dataset) -> xr.Dataset:
    """The layers a depth law is fitted on: the ReLU outputs ``relu<k>`` (by their readable
    names, so a ``Sequential``'s ``features.4`` counts as ``relu2``), renumbered k = 1..L.

    Probe points also include pools and the readout, which are not layers of the law; nets whose
    layers are not numbered ReLUs (residual blocks, a stem ``relu``) keep every point but the
    output.
    """
    names = layer_names(ds)
    relus = [i for i, n in enumerate(names) if re.fullmatch(r"relu\d+", n)]
    keep = relus or [i for i, n in enumerate(names) if n != "output"]
    return ds.isel(layer=keep).assign_coords(depth=("layer", np.arange(1, len(keep) + 1)))


def trained_checkpoint(cube: xr.Dataset) -> str:
    """The checkpoint that stands for "trained": ``best`` if measured, else the last non-init."""
    names = [str(c) for c in cube.checkpoint.values]
    trained = [c for c in names if c != "init"]
    return "best" if "best" in names else (trained[-1] if trained else names[-1])


def trained_error(results: xr.Dataset) -> float:
    """Test error of the trained checkpoint, mean over seeds (a cube, or a spectra file)."""
    return float(results.test_error.sel(checkpoint=trained_checkpoint(results)).mean())


def at_delta(cube: xr.Dataset, delta: float = 1.0) -> xr.Dataset:
    """The cube at the measured temperature whose typical displacement is nearest ``delta``
    pixels (on a log scale): the analysis slice. One-pixel moves have delta 1."""
    deltas = np.asarray(cube.delta.values, dtype=float)
    if not delta > 0:
        raise ValueError(f"delta must be > 0 pixels, got {delta!r}")
    return cube.isel(temperature=int(np.argmin(np.abs(np.log(deltas / delta)))))


def fit_cube(
    cube: xr.Dataset,
    law: str,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Fit ``law`` to D_k, G_k, R_k of every checkpoint and condition of a cube at one
    temperature (:func:`at_delta`).

    Returns ``exponent``, ``prefactor``, ``low``, ``high`` over ``(quantity, checkpoint,
    condition)``, the interval bootstrapped over the cube's seeds.
    """
    series = depth_series(cube)
    fits = [
        fit_layers(series[q], law, n_boot=n_boot, confidence=confidence, seed=seed)
        for q in QUANTITIES
    ]
    ds = xr.concat(fits, pd.Index(list(QUANTITIES), name="quantity"), combine_attrs="override")
    return ds.drop_vars([c for c in ds.coords if c not in ds.dims], errors="ignore")


def fit_experiment(
    cubes: dict[str, xr.Dataset],
    law: str = "auto",
    *,
    delta: float = 1.0,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Depth-law fits of every variant of an experiment at ``delta`` pixels (:func:`at_delta`),
    beside the predicted exponents.

    ``law="auto"`` takes each variant's law from its model (:func:`diffsens.laws.model_law`, read
    from the cube's attributes); the predictions are the constant-filter ones where they apply.
    Returns ``exponent``, ``prefactor``, ``low``, ``high`` over ``(variant, quantity,
    checkpoint, condition)``, ``predicted`` over ``(variant, quantity)``, ``law`` by variant and
    ``test_error`` (mean over seeds) over ``(variant, checkpoint)``.
    """
    fits, predicted, laws = [], [], []
    for cube in cubes.values():
        variant_law, exponents = model_law(RunSettings.from_attrs(cube.attrs).model)
        if law != "auto":
            variant_law = law
        if variant_law not in LAWS:
            variant_law = "none"
        laws.append(variant_law)
        predicted.append([exponents[q] for q in QUANTITIES])
        fitted = fit_cube(
            at_delta(cube, delta),
            variant_law,
            n_boot=bootstrap,
            confidence=confidence,
            seed=seed,
        )
        fitted["test_error"] = (
            cube.test_error.mean("seed") if "seed" in cube.dims else cube.test_error
        )
        fits.append(fitted)
    ds = xr.concat(fits, pd.Index(list(cubes), name="variant"), join="outer", combine_attrs="drop")
    ds["predicted"] = (("variant", "quantity"), np.asarray(predicted, dtype=float))
    ds["law"] = ("variant", np.asarray(laws, dtype=str))
    ds.test_error.attrs = {"long_name": "test error of the checkpoint, mean over seeds"}
    ds.attrs.update(delta=delta, bootstrap=bootstrap, confidence=confidence)
    return ds
