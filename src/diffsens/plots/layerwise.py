"""D_k, G_k, R_k against depth, one column per variant, every condition of each net."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.fits import at_delta, trained_checkpoint
from diffsens.laws import QUANTITIES
from diffsens.plots.style import (
    CONDITIONS,
    SYMBOLS,
    band,
    checkpoint_handles,
    checkpoint_style,
    depth_ticks,
    legend,
    log_axis,
    panels,
    px,
    seed_band_handle,
    styled,
    suptitle,
    title,
)
from diffsens.provenance import RunSettings

__all__ = ["layerwise"]


def trained_on_noise(cube: xr.Dataset) -> bool:
    return RunSettings.from_attrs(cube.attrs).training.get("training_noise", 0) > 0


@styled
def layerwise(
    cubes: Mapping[str, xr.Dataset],
    quantities: Sequence[str] = QUANTITIES,
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    experiment: str = "",
) -> Figure:
    """D_k, G_k, R_k (rows) against the probe point k, one column per variant (cube).

    Each condition of the net in its neutral tone and marker (original black, channel-shuffled
    grey; noisy probes only for nets trained on noise, for which they differ from the
    original), init dashed, trained solid, seeds as a band. Drawn at the measured displacement
    nearest ``delta`` pixels; titles give the trained net's test error, in red above
    ``ceiling``.
    """
    if not cubes:
        raise ValueError("layerwise needs at least one cube")
    fig, columns = panels(len(cubes), len(quantities), 2.3, 1.75)
    conditions, trained_names, banded, shown = [], set(), False, set()
    for axes, (variant, cube) in zip(columns, cubes.items(), strict=True):
        depth = cube.depth.values
        trained = trained_checkpoint(cube)
        trained_names.add(trained)
        cube = at_delta(cube, delta)
        shown.add(float(cube.delta))
        for ax, quantity in zip(axes, quantities, strict=True):
            for condition in map(str, cube.condition.values):
                if condition == "noisy" and not trained_on_noise(cube):
                    continue  # the same measurement as the original
                conditions += [] if condition in conditions else [condition]
                for checkpoint in ("init", trained):
                    values = cube[quantity].sel(condition=condition, checkpoint=checkpoint)
                    style = CONDITIONS[condition]
                    banded |= band(ax, depth, values, style, checkpoint_style(checkpoint))
            log_axis(ax)
            ax.set_ylabel(SYMBOLS.get(quantity, quantity))
            depth_ticks(ax, cube, "probe point", labelled=ax is axes[-1])
        title(axes[0], variant, cube, ceiling)
    handles = [Line2D([], [], label=c.replace("_", " "), **CONDITIONS[c]) for c in conditions]
    handles += checkpoint_handles(trained_names, colour="black")
    handles += [seed_band_handle()] if banded else []
    at = ", ".join(px(d) for d in sorted(shown))
    suptitle(fig, experiment, f"sensitivities per probe point at δ = {at}")
    legend(fig, handles)
    return fig
