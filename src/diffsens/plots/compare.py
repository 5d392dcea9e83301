"""Every variant of an experiment in one panel per quantity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.ticker
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.fits import at_delta, trained_checkpoint, trained_error
from diffsens.laws import QUANTITIES
from diffsens.plots.style import (
    GREY,
    SYMBOLS,
    checkpoint_handles,
    depth_ticks,
    identical,
    legend,
    log_axis,
    px,
    shared_label,
    styled,
    suptitle,
    variant_style,
)
from diffsens.provenance import RunSettings

__all__ = ["compare"]


def _mean(values: xr.DataArray) -> np.ndarray:
    return (values.mean("seed") if "seed" in values.dims else values).values


@styled
def compare(
    cubes: Mapping[str, xr.Dataset],
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    grid: Sequence[str] = (),
    experiment: str = "",
) -> Figure:
    """Every variant in one panel per quantity: D_k, G_k, R_k (columns) against depth, one line
    per variant (mean over seeds, original condition), init dashed, trained solid; an
    undertrained net's trained line (test error above ``ceiling``) is faint. Variants whose
    initial nets are the same are drawn once at init, in grey, and named in the legend.

    ``grid``: the keys (``section.option``) of the experiment's grid. With two or more, colour
    tells the architecture (``model.name``, else the first key) and each value of the other keys
    gets a row of panels, in increasing order, so that the paper's 10 nets x 7 noise levels read
    as 7 rows of 10 colours; otherwise each variant has its colour, in one row. Depth is the
    named probe point where every variant has the same ones, else the relative depth k / K
    (K probe points, the output last).
    """
    settings = {v: RunSettings.from_attrs(c.attrs, f"cube {v}") for v, c in cubes.items()}

    def value(variant: str, key: str):
        section, option = key.split(".")
        return getattr(settings[variant], section)[option]

    colour_key = "model.name" if "model.name" in grid else grid[0] if grid else None
    row_keys = [key for key in grid if key != colour_key]
    colour_by = {v: str(value(v, colour_key)) if row_keys else v for v in cubes}
    by_row = sorted(cubes, key=lambda v: [value(v, key) for key in row_keys])
    rows_by = {
        v: ", ".join(f"{key.split('.')[1]} = {value(v, key)}" for key in row_keys) for v in by_row
    }
    groups = list(dict.fromkeys(colour_by[v] for v in cubes))
    rows = list(dict.fromkeys(rows_by.values()))
    named = len({tuple(map(str, cube.layer.values)) for cube in cubes.values()}) == 1
    fig = Figure(figsize=(3 * 2.3 + 2.0, 1.9 * len(rows) + 0.5))
    panels = fig.subplots(len(rows), 3, squeeze=False, sharex=True, sharey="col")
    errors = {v: trained_error(cube) for v, cube in cubes.items()}
    data = {v: at_delta(cube, delta).sel(condition="original") for v, cube in cubes.items()}
    inits = {
        v: np.concatenate([_mean(d[q].sel(checkpoint="init")) for q in QUANTITIES])
        for v, d in data.items()
    }
    shared = [
        g
        for row in rows
        for g in identical({v: inits[v] for v in cubes if rows_by[v] == row})
        if len(g) > 1
    ]
    trained_names, faint = set(), False
    for variant, cube in cubes.items():
        style = variant_style(groups.index(colour_by[variant]))
        trained = trained_checkpoint(cube)
        trained_names.add(trained)
        under = ceiling is not None and errors[variant] > ceiling
        faint |= under
        depth = cube.depth.values
        x = depth if named else depth / depth.max()
        group = next((g for g in shared if variant in g), None)
        for ax, quantity in zip(panels[rows.index(rows_by[variant])], QUANTITIES, strict=True):
            values = data[variant][quantity]
            if group is None or group[0] == variant:  # a shared init once, in grey
                init = style if group is None else {"color": GREY, "marker": "o", "mfc": GREY}
                ax.plot(x, _mean(values.sel(checkpoint="init")), ls="--", alpha=0.9, **init)
            alpha = 0.3 if under else 0.95
            ax.plot(x, _mean(values.sel(checkpoint=trained)), ls="-", alpha=alpha, **style)
    first = next(iter(cubes.values()))
    for r, (axes, row) in enumerate(zip(panels, rows, strict=True)):
        bottom = r == len(rows) - 1
        for ax, quantity in zip(axes, QUANTITIES, strict=True):
            log_axis(ax)
            ax.grid(which="major")
            ax.set_ylabel(SYMBOLS[quantity])
            if named:
                depth_ticks(ax, first, "probe point", labelled=bottom)
            else:
                ax.xaxis.set_major_locator(matplotlib.ticker.MultipleLocator(0.25))
                ax.set_xlabel("relative depth $k / K$" if bottom else "")
        if row:  # the row's value, in the margin as in a facet grid
            axes[-1].annotate(row, (1.04, 0.5), xycoords="axes fraction", rotation=-90, va="center")
    measured = float(at_delta(first, delta).delta)
    suptitle(fig, experiment, f"original nets at δ = {px(measured)}, mean over seeds")
    # a variant of its own colour (no rows) says its test error
    noted = {} if row_keys else {v: f" ({error:.1%} error)" for v, error in errors.items()}
    handles = [
        Line2D([], [], label=group + noted.get(group, ""), **variant_style(g))
        for g, group in enumerate(groups)
    ]
    handles += checkpoint_handles(trained_names)
    handles += [
        Line2D(
            [],
            [],
            color=GREY,
            marker="o",
            ls="--",
            label=shared_label("init", g),
        )
        for g in dict.fromkeys(map(tuple, shared))
    ]
    if faint:
        handles.append(
            Line2D([], [], color=GREY, alpha=0.3, label=f"undertrained (> {ceiling:.0%} error)")
        )
    legend(fig, handles)
    return fig
