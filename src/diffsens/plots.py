"""Figure functions on xarray objects: each takes cubes and returns a matplotlib Figure.

Conventions for every figure: log axes where a quantity spans decades, initialisation dashed and
trained solid, seeds as a band (min to max) around their mean, one legend per figure, the
Okabe-Ito colour-blind-safe palette. Figures are built without pyplot: no global state, no GUI
backend, safe in workflow jobs and threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = ["PALETTE", "layerwise", "save"]

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
"""Okabe-Ito colours, distinguishable with the common colour-vision deficiencies."""
_STYLE = {"init": "--", "best": "-", "last": "-."}
_SYMBOLS = {"D": r"$D_k$", "G": r"$G_k$", "R": r"$R_k = D_k / G_k$"}


def _band(ax, x, values: xr.DataArray, colour, linestyle, label=None) -> None:
    """Mean over seeds as a line, min..max over seeds as a band."""
    if "seed" in values.dims:
        ax.fill_between(x, values.min("seed"), values.max("seed"), color=colour, alpha=0.2, lw=0)
        values = values.mean("seed")
    ax.plot(x, values, color=colour, linestyle=linestyle, marker="o", ms=3, label=label)


def layerwise(
    cubes: Mapping[str, xr.Dataset], quantity: str = "R", temperature: int = -1
) -> Figure:
    """``quantity`` (D, G or R) against depth k, one panel per variant (cube).

    Colours tell the conditions (original, channel-shuffled) apart, line styles the checkpoints.
    ``temperature`` indexes the cubes' temperature axis.
    """
    if not cubes:
        raise ValueError("layerwise needs at least one cube")
    fig = Figure(figsize=(3.2 * len(cubes) + 0.8, 3.2))
    axes = fig.subplots(1, len(cubes), sharey=True, squeeze=False)
    conditions: list[str] = []
    checkpoints: list[str] = []
    for ax, (variant, cube) in zip(axes[0], cubes.items(), strict=True):
        data = cube[quantity].isel(temperature=temperature)
        depth = cube.depth.values
        for i, condition in enumerate(cube.condition.values):
            conditions += [] if condition in conditions else [condition]
            for checkpoint in cube.checkpoint.values:
                checkpoints += [] if checkpoint in checkpoints else [checkpoint]
                values = data.sel(condition=condition, checkpoint=checkpoint)
                _band(ax, depth, values, PALETTE[i], _STYLE.get(str(checkpoint), ":"))
        delta = float(cube.delta.isel(temperature=temperature))
        ax.set_title(
            f"{variant}" + ("" if delta != delta else f"  (δ = {delta:.2f} px)"), fontsize=9
        )
        ax.set_yscale("log")
        ax.set_xlabel("depth $k$ (probe point)")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(_SYMBOLS.get(quantity, quantity))
    handles = [Line2D([], [], color=PALETTE[i], label=str(c)) for i, c in enumerate(conditions)]
    handles += [
        Line2D([], [], color="grey", linestyle=_STYLE.get(str(c), ":"), label=str(c))
        for c in checkpoints
    ]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 0.8 / fig.get_figwidth(), 1))
    return fig


def save(fig: Figure, paths: Sequence[str | os.PathLike], dpi: int = 150) -> None:
    """Write ``fig`` to every path, in the format its suffix names."""
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
