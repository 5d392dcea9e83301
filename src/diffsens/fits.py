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
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from diffsens.laws import LAWS, QUANTITIES, model_law
from diffsens.provenance import RunSettings

__all__ = [
    "LawFit",
    "depth_series",
    "fit_cube",
    "fit_experiment",
    "fit_law",
    "fit_layers",
    "fit_table",
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


def fit_table(fits: xr.Dataset, predicted: xr.DataArray | None = None) -> pd.DataFrame:
    """A flat table (one row per fitted curve) with the prediction beside each exponent."""
    table = fits.to_dataframe().reset_index()
    if predicted is not None:
        table = table.merge(predicted.rename("predicted").to_dataframe().reset_index(), how="left")
    if "predicted" in table:
        table["deviation"] = table["exponent"] - table["predicted"]
    return table


def depth_series(ds: xr.Dataset) -> xr.Dataset:
    """The layers a depth law is fitted on: the ReLU outputs, renumbered k = 1..L.

    Probe points also include pools and the readout, which are not layers of the law; nets with
    no ReLU probe points keep every point but the output.
    """
    names = [str(n) for n in ds.layer.values]
    keep = [n for n in names if n.startswith("relu")] or [n for n in names if n != "output"]
    return ds.sel(layer=keep).assign_coords(depth=("layer", np.arange(1, len(keep) + 1)))


def fit_cube(
    cube: xr.Dataset,
    law: str,
    *,
    temperature: int = -1,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Fit ``law`` to D_k, G_k, R_k of every checkpoint and condition of a cube.

    Returns ``exponent``, ``prefactor``, ``low``, ``high`` over ``(quantity, checkpoint,
    condition)``, the interval bootstrapped over the cube's seeds.
    """
    series = depth_series(cube.isel(temperature=temperature))
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
    temperature: int = -1,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Depth-law fits of every variant of an experiment, beside the predicted exponents.

    ``law="auto"`` takes each variant's law from its model (:func:`diffsens.laws.model_law`, read
    from the cube's attributes); the predictions are the constant-filter ones where they apply.
    Returns ``exponent``, ``prefactor``, ``low``, ``high`` over ``(variant, quantity,
    checkpoint, condition)``, ``predicted`` over ``(variant, quantity)`` and ``law`` by variant.
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
        fits.append(
            fit_cube(
                cube,
                variant_law,
                temperature=temperature,
                n_boot=bootstrap,
                confidence=confidence,
                seed=seed,
            )
        )
    ds = xr.concat(fits, pd.Index(list(cubes), name="variant"), join="outer", combine_attrs="drop")
    ds["predicted"] = (("variant", "quantity"), np.asarray(predicted, dtype=float))
    ds["law"] = ("variant", np.asarray(laws, dtype=str))
    ds.attrs.update(temperature=temperature, bootstrap=bootstrap, confidence=confidence)
    return ds
