"""The constant-filter model networks against their predicted depth laws."""

from __future__ import annotations

import matplotlib.ticker
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.laws import LAWS, QUANTITIES, law_curve
from diffsens.plots.depth_laws import prediction
from diffsens.plots.style import (
    FIT_STYLE,
    GREY,
    PREDICTION_STYLE,
    SYMBOLS,
    legend,
    log2_axis,
    log_axis,
    styled,
    variant_style,
)

__all__ = ["theory"]

_INPUTS = {
    "padded": {"mfc": None, "label": "authors' input (padded)"},
    "lattice": {"mfc": "white", "label": "lattice (no overlap)"},
}
"""Filled markers on the authors' inputs, open ones on the lattice."""


def _column(ds: xr.Dataset) -> tuple[int, bool]:
    """A network's panel column: its dimension, and whether it downsamples (stride = F)."""
    return int(ds.dim), int(ds.stride) > 1


@styled
def theory(networks: xr.Dataset) -> Figure:
    """D_k, G_k, R_k (rows) of the constant-filter nets with their fits and predicted laws
    (docs/science.md §8).

    ``networks``: :func:`diffsens.theory.theory_networks` output, over ``(network, depth)``. One
    column per dimension and kind of stride (1, a power law in k, on log-log axes; equal to the
    filter size F, an exponential law, on log-linear axes); one colour per filter size F, the
    same in every panel. Markers: measured (filled on the authors' inputs, open on the lattice);
    thick and pale: the fit over the layers it used; dotted: the predicted law, anchored on the
    lattice's fit where there is one.
    """
    names = [str(n) for n in networks.network.values]
    lattice_first = sorted(
        names, key=lambda n: str(networks.inputs.sel(network=n).values) != "lattice"
    )
    by_column: dict[tuple[int, bool], dict[int, list[xr.Dataset]]] = {}
    for name in lattice_first:
        ds = networks.sel(network=name).dropna("depth", subset=["D"])
        by_column.setdefault(_column(ds), {}).setdefault(int(ds.filter_size), []).append(ds)
    columns = sorted(by_column)
    sizes = sorted({int(f) for f in networks.filter_size.values})
    fig = Figure(figsize=(2.2 * len(columns) + 1.9, 1.8 * 3 + 0.7))
    grid = fig.subplots(3, len(columns), squeeze=False)
    drawn = set()
    for c, column in enumerate(columns):
        dim, strided = column
        for row, quantity in enumerate(QUANTITIES):
            ax = grid[row, c]
            for filter_size, group in sorted(by_column[column].items()):
                colour = variant_style(sizes.index(filter_size))["color"]
                anchor, law = None, str(group[0].law.values)
                k_all = np.unique(np.concatenate([ds.depth.values for ds in group])).astype(float)
                for ds in group:
                    inputs = str(ds.inputs.values)
                    k, y = ds.depth.values.astype(float), ds[quantity].values
                    mfc = _INPUTS[inputs]["mfc"] or colour
                    ax.plot(k, y, ls="none", marker="o", color=colour, mfc=mfc, ms=3.5)
                    drawn.add(inputs)
                    fit, fitted = ds.sel(quantity=quantity), ds.fitted.values.astype(bool)
                    if law in LAWS and fitted.any() and np.isfinite(float(fit.exponent)):
                        curve = float(fit.prefactor) * law_curve(
                            k[fitted], float(fit.exponent), law
                        )
                        ax.plot(k[fitted], curve, color=colour, zorder=1, **FIT_STYLE)
                        drawn.add("fit")
                        middle = k[fitted][len(k[fitted]) // 2]
                        anchor = anchor or (middle, float(ds[quantity].sel(depth=middle)))
                exponent = float(group[0].predicted.sel(quantity=quantity))
                if anchor is None:  # no fit: through the middle layer of the first network
                    middle = group[0].depth.values[len(group[0].depth) // 2]
                    anchor = (float(middle), float(group[0][quantity].sel(depth=middle)))
                if prediction(ax, k_all, exponent, law, anchor, colour):
                    drawn.add("law")
            log_axis(ax)
            if strided:
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            else:
                log2_axis(ax)
            ax.grid(which="major")
            if c == 0:
                ax.set_ylabel(SYMBOLS[quantity])
            if row == 2:
                ax.set_xlabel("layer $k$" + (" (log)" if not strided else ""))
        law = "exponential law" if strided else "power law"
        grid[0, c].set_title(f"{dim}-D, stride {'s = F' if strided else '1'}\n({law})")
    handles = [
        Line2D([], [], ls="none", label=f"filter size F = {f}", **variant_style(i))
        for i, f in enumerate(sizes)
    ]
    handles += [
        Line2D(
            [],
            [],
            color=GREY,
            ls="none",
            marker="o",
            mfc=_INPUTS[i]["mfc"] or GREY,
            label=_INPUTS[i]["label"],
        )
        for i in _INPUTS
        if i in drawn
    ]
    if "fit" in drawn:
        handles.append(Line2D([], [], color=GREY, label="fit (asymptotic layers)", **FIT_STYLE))
    if "law" in drawn:
        handles.append(Line2D([], [], color=GREY, label="predicted law", **PREDICTION_STYLE))
    fig.suptitle("Constant-filter networks: measured sensitivities against the predicted laws")
    legend(fig, handles)
    return fig
