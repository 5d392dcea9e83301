"""The visual language every figure shares, and the helpers that apply it.

One meaning per visual channel, across the whole figure set:

- **Colour says which network.** The categorical palette :data:`VARIANT_COLOURS` (Okabe-Ito
  hues without its yellow, orange and sky blue, which fall below 3:1 contrast on white, and
  three darker ones) tells variants apart, in the order of the experiment's config, and only in
  figures that overlay variants (training, compare, error_vs_sensitivity) or architectures (the
  constant-filter theory: one colour per filter size). The quantities D, G, R never get a
  colour: each has its own panel, named on its axis.
- **An ordered setting gets the sequential scale** :func:`ordered_colours` (plasma cut before
  its pale end; every level at 3:1 or more on white), each level with its own marker as well:
  the displacement delta, a Laplacian eigenvalue, the training-noise level.
- **The condition of one network is a neutral tone and a marker** (:data:`CONDITIONS`): the
  original net black, its channel-shuffled copy grey, noisy probes and the channel mean dark
  grey with their own markers.
- **The line style says which checkpoint** (:func:`checkpoint_style`): initialisation dashed,
  the trained net solid. A fitted law is a thick pale line under the data, a predicted law
  dotted.
- **Seeds are a band** from their minimum to their maximum around their mean, and the legend
  says so; the legend lists everything drawn and nothing else.

Every line colour has a contrast of at least :data:`MIN_CONTRAST` against white (WCAG 2.1's
threshold for graphics) and no text is smaller than :data:`MIN_FONT` points at the saved size,
so that a figure reads at a paper's column width. Figures are built without pyplot: no global
state, no GUI backend, safe in workflow jobs.
"""

from __future__ import annotations

import functools
import itertools
import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from diffsens.cubes import layer_names
from diffsens.fits import trained_error
from diffsens.io import write_atomically

MIN_CONTRAST = 3.0
"""Least contrast ratio of a line's colour against white (WCAG 2.1, non-text contrast)."""
MIN_FONT = 7.0
"""Least font size, in points at the saved size."""

VARIANT_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#332288", "#8F6200", "#882255"]
"""One colour per variant: Okabe-Ito blue, vermillion, bluish green, reddish purple, then
indigo, dark ochre and wine; beyond seven, the colours come back with open markers."""
ALERT = "#C00000"
"""The error ceiling and an undertrained net's title."""
GREY = "#7A7A7A"
"""Neutral grey of legend samples that stand for every colour (4.3:1 on white)."""
CONDITIONS = {
    "original": {"color": "#000000", "marker": "o"},
    "shuffled": {"color": GREY, "marker": "s", "mfc": "white"},
    "noisy": {"color": "#505050", "marker": "^"},
    "channel_mean": {"color": "#505050", "marker": "D"},
}
"""How each condition of a net is drawn: a neutral tone and a marker."""
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
"""Markers of the levels of an ordered setting, and of architectures where colour is taken."""
SYMBOLS = {"D": r"$D_k$", "G": r"$G_k$", "R": r"$R_k = D_k / G_k$"}
SEED_BAND = 0.2
"""Opacity of the band over seeds."""
FIT_STYLE = {"lw": 3.5, "alpha": 0.35, "solid_capstyle": "round"}
"""A fitted law: thick and pale, under the measured points it was fitted to."""
PREDICTION_STYLE = {"ls": ":", "lw": 1.4}

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7.5,
    "figure.titlesize": 9,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.5,
    "grid.alpha": 0.35,
}
"""Sizes for a panel about 2 inches wide: a figure of 3 panels fits a 7-inch page at scale 1."""


def styled(figure_function):
    """Build the figure under :data:`RC` (text sizes are fixed when the text is made)."""

    @functools.wraps(figure_function)
    def build(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return figure_function(*args, **kwargs)

    return build


def contrast_ratio(colour, background="white") -> float:
    """WCAG 2.1 contrast ratio of two colours (1 to 21)."""

    def luminance(c):
        rgb = np.array(matplotlib.colors.to_rgb(c))
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    high, low = sorted((luminance(colour), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def variant_style(index: int) -> dict:
    """Colour and marker of the ``index``-th variant: the palette with filled markers, then
    again with open ones."""
    colour = VARIANT_COLOURS[index % len(VARIANT_COLOURS)]
    filled = index < len(VARIANT_COLOURS)
    return {"color": colour, "marker": "o" if filled else "s", "mfc": colour if filled else "white"}


_ORDERED = matplotlib.colormaps["plasma"]
_ORDERED_END = 0.6
"""Where plasma is cut: beyond it, its colours fall below 3:1 on white."""


def ordered_colours(count: int) -> list:
    """``count`` colours of the sequential scale, darkest first."""
    return [_ORDERED(_ORDERED_END * i / max(1, count - 1)) for i in range(count)]


def ordered_style(index: int, count: int) -> dict:
    """Colour and marker of the ``index``-th of ``count`` ordered levels."""
    return {"color": ordered_colours(count)[index], "marker": MARKERS[index % len(MARKERS)]}


def checkpoint_style(checkpoint: str) -> str:
    """Line style of a checkpoint: init dashed, a trained one solid."""
    return "--" if checkpoint == "init" else "-"


def checkpoint_handles(trained: Iterable[str], colour=GREY) -> list:
    """Legend entries of the line styles: init, and the trained checkpoints shown."""
    names = ", ".join(sorted(set(trained)))
    return [
        Line2D([], [], color=colour, ls="--", label="init"),
        Line2D([], [], color=colour, ls="-", label=f"trained ({names})"),
    ]


def identical(curves: Mapping[str, np.ndarray]) -> list[list[str]]:
    """The names of ``curves`` grouped by equal values (in order), e.g. variants that differ
    only in a training setting have the same initial nets, and may share a learning rate: drawn
    one on another, they would hide each other, so a group of several is drawn once, in grey,
    and named by :func:`shared_label`."""
    groups: list[list[str]] = []
    for name, curve in curves.items():
        for group in groups:
            first = curves[group[0]]
            if first.shape == curve.shape and np.allclose(first, curve, rtol=1e-6, equal_nan=True):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def shared_label(what: str, names: Sequence[str]) -> str:
    return f"{what} of " + ",\n".join(names) + "\n(the same for each)"


MAX_MARKERS = 30
"""Markers on one line: a long series (hundreds of epochs) marks every n-th point."""


def band(ax, x, values: xr.DataArray, style: dict, linestyle: str = "-") -> bool:
    """The mean over seeds as a line with markers (at most :data:`MAX_MARKERS`), the seeds'
    min..max as a band in its colour; whether a band was drawn (more than one seed)."""
    banded = "seed" in values.dims and values.sizes["seed"] > 1
    if banded:
        low, high = values.min("seed"), values.max("seed")
        ax.fill_between(x, low, high, color=style["color"], alpha=SEED_BAND, lw=0)
    if "seed" in values.dims:
        values = values.mean("seed")
    every = -(-len(x) // MAX_MARKERS)
    ax.plot(x, values, ls=linestyle, markevery=every, **style)
    return banded


def seed_band_handle() -> Patch:
    return Patch(color=GREY, alpha=SEED_BAND + 0.15, lw=0, label="seeds: min to max")


def px(delta: float) -> str:
    """A displacement in pixels, in at most 2 significant digits: "1 px", "0.5 px"."""
    return f"{float(f'{delta:.2g}'):g} px"


def title(ax, variant: str, results: xr.Dataset, ceiling: float | None) -> None:
    """The variant, the trained net's test error, and a red mark when that error is above the
    ceiling: such a net is drawn, but not as a trained one."""
    error = trained_error(results)
    text = f"{variant}\ntest error {error:.1%}"
    above = ceiling is not None and error > ceiling
    if above:
        text += f" > {ceiling:.0%}: undertrained"
    ax.set_title(text, color=ALERT if above else "black")


def suptitle(fig: Figure, experiment: str, what: str) -> None:
    """The figure's title: its experiment, when known, and what it shows, wrapped to the
    figure's width (a one-panel figure is narrower than a long title)."""
    text = f"{experiment}: {what}" if experiment else what
    width = int(fig.get_figwidth() * 14)  # characters of 9 pt in an inch, about
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))


MAX_COLUMNS = 7
"""Variants per row of panels; a larger grid (the paper's 70 CIFAR variants) wraps."""


def panels(count: int, rows: int, width: float, height: float) -> tuple[Figure, list]:
    """A figure with a column of ``rows`` panels (each ``width`` x ``height`` inches) for each of
    ``count`` items, wrapped after :data:`MAX_COLUMNS` items; returns the figure and each item's
    column of axes (unused slots are removed, so that no empty panel is left)."""
    ncols = min(count, MAX_COLUMNS)
    blocks = -(-count // ncols)
    fig = Figure(figsize=(width * ncols + 1.6, height * rows * blocks + 0.6))
    grid = fig.subplots(rows * blocks, ncols, squeeze=False)
    columns = []
    for i in range(blocks * ncols):
        block, col = divmod(i, ncols)
        axes = grid[block * rows : (block + 1) * rows, col]
        for ax in axes:
            if i < count:
                ax.grid(which="major")
            else:
                ax.remove()
        if i < count:
            columns.append(list(axes))
    return fig, columns


def plain(value: float, _=None) -> str:
    """A tick label as a plain number: 0.2, not 2 x 10^-1."""
    return f"{value:g}"


def power_of_ten(value: float, _=None) -> str:
    """A tick label in powers of ten: 10^-3, or 2 x 10^-4 between decades."""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = round(value / 10.0**exponent, 6)
    return f"$10^{{{exponent}}}$" if mantissa == 1 else f"${mantissa:g}\\times10^{{{exponent}}}$"


def percent(value: float, _=None) -> str:
    return f"{100 * value:g}%"


PLAIN_RANGE = (1e-4, 1e4)
"""Log-axis ticks inside this range read as plain numbers; an axis reaching beyond it is
labelled in powers of ten."""


def _nice_ticks(low: float, high: float) -> np.ndarray:
    """Ticks of a log axis from ``low`` to ``high``: 1 to 9 (and 1.5) times powers of 10 over up
    to 0.3 decades, 1, 2, 3, 5, 7 up to 0.6, 1, 2, 5 up to 1.3, 1 and 3 up to 2, the decades up to
    6, every other decade beyond."""
    span = np.log10(high / low)
    subs = (1, 2, 5) if span <= 1.3 else (1, 3) if span <= 2 else (1,)
    subs = (1, 2, 3, 5, 7) if span <= 0.6 else subs
    subs = (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9) if span <= 0.3 else subs
    step = 1 if span <= 6 else 2
    first, last = int(np.floor(np.log10(low))) - 2, int(np.ceil(np.log10(high))) + 2
    return np.array(
        [s * 10.0**e for e in range(first, last + 1) if e % step == 0 for s in subs],
        dtype=float,
    )


def log_axis(ax, axis: str = "y", formatter=None, span: tuple[float, float] | None = None) -> None:
    """A log axis whose labelled ticks cover the data: its limits are widened to the nearest
    ticks at or beyond the data, so that a label stands at or past both ends. Labels are plain
    numbers (or ``formatter``'s) when the axis stays within :data:`PLAIN_RANGE`, else in powers
    of 10, never both on one axis. ``span`` is the data's range where this axis's own drawing
    does not hold it (an axis shared with panels that drew nothing). Call after plotting."""
    getattr(ax, f"set_{axis}scale")("log")
    low, high = (ax.dataLim.y0, ax.dataLim.y1) if axis == "y" else (ax.dataLim.x0, ax.dataLim.x1)
    if span is not None:
        low, high = span
    if np.isfinite(low) and low == high > 0:  # one value (a constant learning rate)
        low, high = low / 2, high * 2
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):  # a 0
        low, high = getattr(ax, f"get_{axis}lim")()
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        return
    powers = formatter is None and not (PLAIN_RANGE[0] <= low and high <= PLAIN_RANGE[1])
    ticks = _nice_ticks(low, high)
    start = ticks[ticks <= low * 1.0001][-1]
    end = ticks[ticks >= high / 1.0001][0]
    pad = (end / start) ** 0.03  # markers on the end ticks stay whole
    getattr(ax, f"set_{axis}lim")(start / pad, end * pad)
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(
        matplotlib.ticker.FixedLocator(ticks[(ticks >= start) & (ticks <= end)])
    )
    formatter = power_of_ten if powers else formatter or plain
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(formatter))
    target.set_minor_locator(matplotlib.ticker.NullLocator())


def log2_axis(ax) -> None:
    """A log x axis of depth at powers of 2 in plain numbers (power laws are straight on it)."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=2))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(plain))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


MAX_NAMED = 24
"""Probe points named on a depth axis; a deeper net's would overlap, and are numbered."""


def depth_ticks(ax, ds, counted: str, *, labelled: bool = True, log: bool = False) -> None:
    """Tick a depth axis at the layers of ``ds`` (coordinates ``layer`` and ``depth``), named
    (:func:`diffsens.cubes.layer_names`) up to :data:`MAX_NAMED` layers, else numbered; on a
    log axis only at powers of 2 (names that would touch are turned upright by :func:`legend`,
    once the panels have their size). ``labelled=False`` leaves the labels to the panel below.
    The axis label says what the depth counts."""
    depth, names = ds.depth.values, layer_names(ds)
    if len(names) <= MAX_NAMED:
        at = [i for i, k in enumerate(depth) if not log or np.log2(k).is_integer()]
        ax.set_xticks(depth[at], [names[i] for i in at])
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.tick_params(axis="x", labelbottom=labelled)
    if labelled:
        ax.set_xlabel(f"{counted} $k$")


def legend(fig: Figure, handles: Sequence) -> None:
    """One legend per figure, outside the panels on the right, the panels laid out beside it
    (as wide as the legend is, so that long labels never run into the panels)."""
    fig.legend(handles=handles, loc="center right", frameon=False)
    fig.draw_without_rendering()  # the legend's size as drawn
    inches = fig.legends[0].get_window_extent().width / fig.dpi
    rect = (0, 0, 1 - (inches + 0.1) / fig.get_figwidth(), 1)
    fig.tight_layout(rect=rect)
    for _ in range(3):  # a new layout can bring other labels together
        if not _upright_clashing_ticks(fig):
            break
        fig.tight_layout(rect=rect)


def shown_ticklabels(ax) -> list:
    """The x tick labels drawn: with text, in the view (a locator also labels ticks beyond)."""
    low, high = sorted(ax.get_xlim())
    return [
        label
        for label in ax.get_xticklabels()
        if label.get_text() and label.get_visible() and low <= label.get_position()[0] <= high
    ]


def _upright_clashing_ticks(fig: Figure) -> bool:
    """Turn upright the x tick labels of every panel where two of them come closer than half a
    character (text widths differ slightly between resolutions); whether any were."""
    fig.draw_without_rendering()
    turned = False
    for ax in fig.axes:
        labels = shown_ticklabels(ax)
        boxes = [t.get_window_extent() for t in labels]
        gap = max((t.get_fontsize() * fig.dpi / 72 / 2 for t in labels), default=0)
        if any(a.x1 + gap > b.x0 for a, b in itertools.pairwise(boxes)):
            ax.tick_params(axis="x", labelrotation=90)
            turned = True
    return turned


def note(ax, text: str) -> None:
    """A message in the middle of a panel that has nothing (or nothing meaningful) to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def save(fig: Figure, paths: Sequence[str | os.PathLike], dpi: int = 150) -> None:
    """Write ``fig`` to every path, in the format its suffix names, each file atomically."""
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        write_atomically(path, lambda partial, f=fmt: fig.savefig(partial, dpi=dpi, format=f))
