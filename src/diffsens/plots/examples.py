"""Scale-detection inputs and how an input spreads through constant-filter nets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from diffsens.plots.style import styled

__all__ = ["examples"]

NO_POSITION = "#D9D9D9"
"""Layers narrower than the widest: positions that no longer exist, off the colour scale."""


@styled
def examples(
    image: np.ndarray,
    moved: np.ndarray,
    propagations: Mapping[str, Sequence[np.ndarray]],
    task: str,
) -> Figure:
    """A scale-detection image and its one-pixel moves, and how a two-pixel input spreads through
    constant-filter nets, layer by layer (paper figure 5, docs/science.md §10).

    ``task`` names the image's task and dataset in the figure's title; a colour bar reads the
    spreading, each layer normalised to its maximum; positions a strided layer no longer has
    are light grey, named in a legend of their own (they are not a value of the scale).
    """
    fig = Figure(figsize=(2.1 * (2 + len(propagations)) + 0.9, 2.6), layout="constrained")
    axes = fig.subplots(1, 2 + len(propagations))
    for ax, picture, title in ((axes[0], image, "input"), (axes[1], moved, "after pixel moves")):
        ax.imshow(picture, cmap="Greys", interpolation="nearest")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=NO_POSITION)
    narrower = False
    for ax, (name, layers) in zip(axes[2:], propagations.items(), strict=True):
        width = max(len(a) for a in layers)
        grid = np.full((len(layers), width), np.nan)
        for i, a in enumerate(layers):
            grid[i, : len(a)] = a / (a.max() or 1)
        narrower |= bool(np.isnan(grid).any())
        extent = (-0.5, width - 0.5, len(layers) + 0.5, 0.5)
        shown = ax.imshow(
            grid, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest", extent=extent
        )
        ax.set_title(f"two pixels through {name}")
        ax.set_xlabel("position")
        ax.set_ylabel("layer $k$")
    if propagations:
        fig.colorbar(shown, ax=axes[2:], label="activation / layer maximum", fraction=0.05)
    if narrower:
        fig.legend(
            handles=[Patch(color=NO_POSITION, label="no such position at that layer (stride)")],
            loc="outside lower right",
            frameon=False,
        )
    fig.suptitle(
        f"{task}: an input and its pixel moves; 1-D constant-filter nets (filter F, stride s)"
    )
    return fig
