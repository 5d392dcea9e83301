"""A quantity against depth at every measured displacement."""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.fits import trained_checkpoint
from diffsens.plots.style import (
    SYMBOLS,
    band,
    checkpoint_handles,
    checkpoint_style,
    depth_ticks,
    legend,
    log_axis,
    ordered_style,
    panels,
    px,
    seed_band_handle,
    styled,
    suptitle,
    title,
)

__all__ = ["temperatures"]


@styled
def temperatures(
    cubes: Mapping[str, xr.Dataset],
    quantity: str = "R",
    *,
    ceiling: float | None = None,
    experiment: str = "",
) -> Figure:
    """``quantity`` against depth at every measured temperature, one panel per variant: the
    typical displacement delta on the ordered scale (colour and marker), trained (solid) and
    initial (dashed) nets, original condition, seeds as a band."""
    fig, columns = panels(len(cubes), 1, 2.4, 2.1)
    deltas = sorted({float(d) for cube in cubes.values() for d in cube.delta.values})
    trained_names, banded = set(), False
    for (ax,), (variant, cube) in zip(columns, cubes.items(), strict=True):
        trained = trained_checkpoint(cube)
        trained_names.add(trained)
        for t, delta in enumerate(map(float, cube.delta.values)):
            style = ordered_style(deltas.index(delta), len(deltas))
            for checkpoint in ("init", trained):
                values = (
                    cube[quantity]
                    .isel(temperature=t)
                    .sel(checkpoint=checkpoint, condition="original")
                )
                banded |= band(ax, cube.depth.values, values, style, checkpoint_style(checkpoint))
        log_axis(ax)
        title(ax, variant, cube, ceiling)
        depth_ticks(ax, cube, "probe point")
        ax.set_ylabel(SYMBOLS.get(quantity, quantity))
    handles = [
        Line2D([], [], label=f"δ = {px(d)}", **ordered_style(i, len(deltas)))
        for i, d in enumerate(deltas)
    ]
    handles += checkpoint_handles(trained_names, colour="black")
    handles += [seed_band_handle()] if banded else []
    suptitle(fig, experiment, f"${quantity}_k$ at every measured displacement δ")
    legend(fig, handles)
    return fig
