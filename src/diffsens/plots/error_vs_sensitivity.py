"""Test error of trained nets against the sensitivities of their output."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.ticker
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.fits import at_delta, trained_checkpoint
from diffsens.laws import QUANTITIES
from diffsens.plots.style import (
    ALERT,
    GREY,
    MARKERS,
    legend,
    log_axis,
    ordered_style,
    percent,
    px,
    styled,
    suptitle,
    variant_style,
)

__all__ = ["error_vs_sensitivity"]


@styled
def error_vs_sensitivity(
    cubes: Mapping[str, xr.Dataset],
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    colour_by: Mapping[str, float] | None = None,
    colour_label: str = "",
    shape_by: Mapping[str, str] | None = None,
    experiment: str = "",
) -> Figure:
    """Test error against D, G and R of the output of each trained net (paper figures 1 and 7,
    docs/science.md §10), all on log axes.

    One open marker per seed, one filled per variant (mean over seeds), at the temperature
    nearest ``delta`` pixels. ``colour_by`` maps each variant to a level (e.g. its training
    noise) shown on the ordered scale, and ``shape_by`` to a name (e.g. its architecture) shown
    by the marker's shape; otherwise each variant gets its own colour. The ``ceiling`` on test
    error (above it a net counts as undertrained) is a dashed line where the error axis reaches
    it, else named in the legend as off the axis. A relation across nets needs two or more
    variants, and a log axis a positive error: the figure says so on its panels where it lacks
    either.
    """
    fig = Figure(figsize=(8.0, 2.6))
    axes = fig.subplots(1, 3, sharey=True)
    shown = float(at_delta(next(iter(cubes.values())), delta).delta)
    if colour_by:  # one colour per level, in order, each level named as it is (0 as 0)
        levels = sorted({float(colour_by[v]) for v in cubes})
        styles = {v: ordered_style(levels.index(float(colour_by[v])), len(levels)) for v in cubes}
    else:
        styles = {v: variant_style(i) for i, v in enumerate(cubes)}
    names = list(dict.fromkeys((shape_by or {}).get(v, "") for v in cubes))
    for v in cubes:
        styles[v]["marker"] = MARKERS[names.index((shape_by or {}).get(v, "")) % len(MARKERS)]
    errors = {
        v: cube.test_error.sel(checkpoint=trained_checkpoint(cube)) for v, cube in cubes.items()
    }
    every = np.concatenate([e.values.ravel() for e in errors.values()])
    positive = bool((every > 0).all())
    undefined = []  # quantities without a value: a constant output has no D, G or R
    for ax, quantity in zip(axes, QUANTITIES, strict=True):
        outputs = {}
        for variant, cube in cubes.items():
            out = at_delta(cube, delta)[quantity].isel(layer=-1)
            outputs[variant] = out.sel(checkpoint=trained_checkpoint(cube), condition="original")
        if not any(np.isfinite(out.values).any() for out in outputs.values()):
            undefined.append(quantity)
        for variant, out in outputs.items():
            colour, marker = styles[variant]["color"], styles[variant]["marker"]
            ax.scatter(
                out,
                errors[variant],
                s=22,
                marker=marker,
                facecolor="none",
                edgecolor=colour,
                lw=0.9,
            )
            ax.scatter(
                float(out.mean()),
                float(errors[variant].mean()),
                s=55,
                marker=marker,
                color=colour,
                edgecolor="black",
                lw=0.6,
                zorder=3,
            )
        if np.isfinite(ax.dataLim.x0) and ax.dataLim.x0 > 0:  # NaN where the output collapsed
            log_axis(ax, "x")
        ax.set_xlabel(f"${quantity}$ of the output")
        ax.grid(which="major")
    if positive:
        log_axis(axes[0], "y", formatter=percent, span=(every.min(), every.max()))
    else:  # an error of 0 has no place on a log axis
        axes[0].set_ylim(-0.05 * max(every.max(), 0.01), max(every.max(), 0.01) * 1.1)
        axes[0].yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(percent))
    axes[0].set_ylabel("test error")
    low, high = axes[0].get_ylim()  # the ceiling drawn where the error axis reaches it
    on_axis = ceiling is not None and low <= ceiling <= high
    if on_axis:
        for ax in axes:
            ax.axhline(ceiling, color=ALERT, ls="--", lw=0.9)
    problems = []  # said under the title
    if len(cubes) < 2:
        problems.append("one variant, so no relation across nets to show")
    if every.max() == 0:
        problems.append("every net at 0% test error")
    if undefined:
        problems.append(f"no {', '.join(undefined)} at the output (a constant output has none)")
    handles = (
        [
            Line2D(
                [],
                [],
                ls="none",
                label=f"{colour_label} {level:g}".strip(),
                **ordered_style(i, len(levels)) | {"marker": "o"},
            )
            for i, level in enumerate(levels)
        ]
        if colour_by
        else [Line2D([], [], ls="none", label=v, mec="black", **styles[v]) for v in cubes]
    )
    if len(names) > 1:
        handles += [
            Line2D([], [], color=GREY, ls="none", marker=MARKERS[i % len(MARKERS)], label=name)
            for i, name in enumerate(names)
        ]
    handles += [
        Line2D([], [], color="black", ls="none", marker="o", mfc="none", label="one seed"),
        Line2D([], [], color="black", ls="none", marker="o", ms=7, label="mean over seeds"),
    ]
    if ceiling is not None:
        text = f"error ceiling {ceiling:.0%}" + ("" if on_axis else " (off the axis)")
        handles.append(Line2D([], [], color=ALERT, ls="--", lw=0.9, label=text))
    what = f"test error of the trained nets against the output's sensitivities, δ = {px(shown)}"
    what += ", clean probes" + (f"\n({'; '.join(problems)})" if problems else "")
    suptitle(fig, experiment, what)
    legend(fig, handles)
    return fig
