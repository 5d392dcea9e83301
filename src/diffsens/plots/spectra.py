"""Laplacian spectra of the filters: where the filters' energy lies, layer by layer."""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.plots.style import (
    band,
    checkpoint_handles,
    checkpoint_style,
    depth_ticks,
    legend,
    note,
    ordered_style,
    panels,
    seed_band_handle,
    styled,
    suptitle,
    title,
)

__all__ = ["spectra"]


@styled
def spectra(
    spectra_by_variant: Mapping[str, xr.Dataset],
    *,
    ceiling: float | None = None,
    experiment: str = "",
) -> Figure:
    """Share of filter energy on each Laplacian eigenvalue, per conv layer (paper figure 4,
    docs/science.md §10).

    One panel per variant; each eigenvalue (degenerate modes summed) on the ordered scale with
    its own marker, initialisation dashed, trained solid, seeds as a band. A net without a
    spatial convolution says so in its panel.
    """
    fig, columns = panels(len(spectra_by_variant), 1, 2.4, 2.1)
    by_variant = {}
    for variant, ds in spectra_by_variant.items():
        if ds.sizes.get("layer", 0):
            by_variant[variant] = ds.fraction.groupby(ds.eigenvalue.round(6)).sum("mode")
    eigen = sorted({float(v) for s in by_variant.values() for v in s.eigenvalue.values})
    trained_names, banded = set(), False
    for (ax,), (variant, ds) in zip(columns, spectra_by_variant.items(), strict=True):
        title(ax, variant, ds, ceiling)
        depth_ticks(ax, ds, "conv layer")
        ax.set_ylabel("share of filter energy")
        if variant not in by_variant:
            note(ax, "no convolution\nwith a spatial filter")
            continue
        checkpoints = list(map(str, ds.checkpoint.values))
        trained_names.update(c for c in checkpoints if c != "init")
        for value in map(float, by_variant[variant].eigenvalue.values):
            style = ordered_style(eigen.index(value), len(eigen))
            for checkpoint in checkpoints:
                share = by_variant[variant].sel(eigenvalue=value, checkpoint=checkpoint)
                banded |= band(ax, ds.depth.values, share, style, checkpoint_style(checkpoint))
        ax.set_ylim(bottom=0)
    handles = [
        Line2D([], [], label=f"λ = {v:g}", **ordered_style(i, len(eigen)))
        for i, v in enumerate(eigen)
    ]
    handles += checkpoint_handles(trained_names, colour="black") if trained_names else []
    handles += [seed_band_handle()] if banded else []
    suptitle(
        fig,
        experiment,
        "filter energy per eigenvalue λ of the grid Laplacian (λ = 0: constant filter)",
    )
    legend(fig, handles)
    return fig
