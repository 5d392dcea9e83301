"""The headline numbers of a run, in one table: what prose about the results quotes.

One row per (experiment, variant, checkpoint, condition): the test error (of the original net,
on the noisy test set for the noisy condition; the shuffled net is not evaluated), D, G and R at
the first probe point and at the deepest hidden one (the last before the output), at the
analysis displacement, each as mean and standard deviation over seeds, the depth-law exponents
fitted to D_k, G_k, R_k, and whether the trained net's test error is above the experiment's
ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from diffsens.cubes import layer_names, test_error_of
from diffsens.fits import at_delta, trained_checkpoint, trained_error
from diffsens.laws import QUANTITIES

__all__ = ["summarise", "summary_markdown"]


def summarise(
    experiments: Mapping[str, tuple[Mapping[str, xr.Dataset], xr.Dataset]],
    *,
    delta: float = 1.0,
    ceilings: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The summary table of ``{experiment: (cubes by variant, fits)}`` at ``delta`` pixels."""
    rows = []
    for experiment, (cubes, fits) in experiments.items():
        ceiling = (ceilings or {}).get(experiment)
        for variant, cube in cubes.items():
            at = at_delta(cube, delta)
            names = layer_names(at)
            first, last = 0, len(names) - 2 if len(names) > 1 else 0  # deepest hidden
            trained = trained_checkpoint(cube)
            undertrained = ceiling is not None and trained_error(cube) > ceiling
            for checkpoint in map(str, at.checkpoint.values):
                for condition in map(str, at.condition.values):
                    error = test_error_of(at, condition)
                    measured = error is not None
                    error = error.sel(checkpoint=checkpoint) if measured else None
                    row = {
                        "experiment": experiment,
                        "variant": variant,
                        "checkpoint": checkpoint,
                        "condition": condition,
                        "seeds": at.sizes.get("seed", 1),
                        "delta": float(at.delta),
                        "test_error": _mean(error) if measured else np.nan,
                        "test_error_sd": _sd(error) if measured else np.nan,
                        "undertrained": bool(undertrained and checkpoint == trained),
                        "first_layer": names[first],
                        "last_layer": names[last],
                    }
                    here = at.sel(checkpoint=checkpoint, condition=condition)
                    for quantity in QUANTITIES:
                        for where, layer in (("first", first), ("last", last)):
                            values = here[quantity].isel(layer=layer)
                            row[f"{quantity}_{where}"] = _mean(values)
                            row[f"{quantity}_{where}_sd"] = _sd(values)
                    fit = fits.sel(variant=variant, checkpoint=checkpoint, condition=condition)
                    row["law"] = str(fits.law.sel(variant=variant).values)
                    for quantity in QUANTITIES:
                        row[f"{quantity}_exponent"] = float(fit.exponent.sel(quantity=quantity))
                    rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary as pipe tables, one per experiment, values as mean ± sd over seeds."""
    parts = []
    for experiment, block in table.groupby("experiment", sort=False):
        first, last = block.first_layer.iloc[0], block.last_layer.iloc[0]
        header = (
            f"## {experiment}\n\nAt δ = {block.delta.iloc[0]:.2f} px; first probe point "
            f"`{first}`, deepest hidden `{last}`; mean ± sd over {block.seeds.iloc[0]} seed(s); "
            "R exponent: of the variant's depth law (its column) fitted to R_k, blank where "
            "it has none.\n"
        )
        lines = [
            "| variant | checkpoint | condition | test error | R first | R last | law | "
            "R exponent | D last | G last |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in block.itertuples(index=False):
            error = _pm(100 * row.test_error, 100 * row.test_error_sd, "{:.1f}")
            error += " %" if error else ""
            if row.undertrained:
                error += " (undertrained)"
            lines.append(
                f"| {row.variant} | {row.checkpoint} | {row.condition} | {error} | "
                f"{_pm(row.R_first, row.R_first_sd)} | {_pm(row.R_last, row.R_last_sd)} | "
                f"{row.law} | {_number(row.R_exponent)} | {_pm(row.D_last, row.D_last_sd)} | "
                f"{_pm(row.G_last, row.G_last_sd)} |"
            )
        parts.append(header + "\n" + "\n".join(lines) + "\n")
    return "# Summary\n\n" + "\n".join(parts)


def _mean(values: xr.DataArray) -> float:
    return float(values.mean())


def _sd(values: xr.DataArray) -> float:
    """Standard deviation over seeds (NaN for a single seed)."""
    if "seed" not in values.dims or values.sizes["seed"] < 2:
        return float("nan")
    return float(values.std("seed", ddof=1))


def _number(value: float, form: str = "{:.3g}") -> str:
    return "" if np.isnan(value) else form.format(value)


def _pm(mean: float, sd: float, form: str = "{:.3g}") -> str:
    text = _number(mean, form)
    return text if np.isnan(sd) else f"{text} ± {_number(sd, form)}"
