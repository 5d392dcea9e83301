"""Figure functions on xarray objects: each takes cubes and returns a matplotlib Figure.

Conventions for every figure: log axes where a quantity spans decades, initialisation dashed and
trained solid, seeds as a band (min to max) around their mean, one legend per figure, the
Okabe-Ito colour-blind-safe palette (viridis for ordered values). Figures are built without
pyplot: no global state, no GUI backend, safe in workflow jobs and threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from diffsens.claims import at_delta as claims_at_delta
from diffsens.claims import claim_label, claim_rows
from diffsens.fits import at_delta, depth_series, trained_checkpoint, trained_error
from diffsens.io import write_atomically
from diffsens.laws import LAWS, QUANTITIES, law_curve
from diffsens.provenance import RunSettings

__all__ = [
    "PALETTE",
    "VERDICT_COLOURS",
    "claims",
    "compare",
    "depth_laws",
    "error_vs_sensitivity",
    "examples",
    "layerwise",
    "save",
    "spectra",
    "temperatures",
    "theory",
    "training_curves",
]

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
"""Okabe-Ito colours, distinguishable with the common colour-vision deficiencies."""
_STYLE = {"init": "--", "best": "-", "last": "-."}
_CONDITION_COLOURS = {
    "original": PALETTE[0],
    "shuffled": PALETTE[1],
    "noisy": PALETTE[2],
    "channel_mean": PALETTE[3],
}
_SYMBOLS = {"D": r"$D_k$", "G": r"$G_k$", "R": r"$R_k = D_k / G_k$"}


def _band(ax, x, values: xr.DataArray, colour, linestyle, label=None) -> None:
    """Mean over seeds as a line, min..max over seeds as a band."""
    if "seed" in values.dims:
        ax.fill_between(x, values.min("seed"), values.max("seed"), color=colour, alpha=0.2, lw=0)
        values = values.mean("seed")
    ax.plot(x, values, color=colour, linestyle=linestyle, marker="o", ms=3, label=label)


def _title(ax, variant: str, results: xr.Dataset, ceiling: float | None, note: str = "") -> None:
    """The variant, the trained net's test error, and a red mark when that error is above the
    ceiling: such a net is drawn, but not as a trained one."""
    error = trained_error(results)
    text = f"{variant}{note}\ntest error {error:.1%}"
    above = ceiling is not None and error > ceiling
    if above:
        text += f" > {ceiling:.0%}: undertrained"
    ax.set_title(text, fontsize=9, color="#C00000" if above else "black")


def layerwise(
    cubes: Mapping[str, xr.Dataset],
    quantities: Sequence[str] = QUANTITIES,
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
) -> Figure:
    """D_k, G_k, R_k (rows) against depth k, one column per variant (cube).

    Colours tell the conditions (original, channel-shuffled, noisy probes; the last only for nets
    trained on noise, for which it differs from the original) apart, line styles the checkpoints
    (init dashed). The measured temperature nearest a typical displacement of ``delta`` pixels is
    drawn; titles give the trained net's test error, in red above ``ceiling``.
    """
    if not cubes:
        raise ValueError("layerwise needs at least one cube")
    fig, columns = _panels(len(cubes), len(quantities), 2.9, 2.4)
    conditions: list[str] = []
    checkpoints: list[str] = []
    for axes, (variant, cube) in zip(columns, cubes.items(), strict=True):
        depth = cube.depth.values
        cube = at_delta(cube, delta)
        for ax, quantity in zip(axes, quantities, strict=True):
            _depth_ticks(ax, cube, "probe point", labelled=ax is axes[-1])
            data = cube[quantity]
            for condition in map(str, cube.condition.values):
                if condition == "noisy" and not _trained_on_noise(cube):
                    continue  # the same measurement as the original
                conditions += [] if condition in conditions else [condition]
                for checkpoint in map(str, cube.checkpoint.values):
                    checkpoints += [] if checkpoint in checkpoints else [checkpoint]
                    values = data.sel(condition=condition, checkpoint=checkpoint)
                    colour = _CONDITION_COLOURS[condition]
                    _band(ax, depth, values, colour, _STYLE.get(checkpoint, ":"))
            _log_y(ax)
            ax.grid(alpha=0.3, which="both")
            ax.set_ylabel(_SYMBOLS.get(quantity, quantity))
        _title(axes[0], variant, cube, ceiling, f"  (δ = {float(cube.delta):.2f} px)")
    handles = [Patch(color=_CONDITION_COLOURS[c], label=c) for c in conditions]  # any line
    handles += [Line2D([], [], color="grey", ls=_STYLE.get(c, ":"), label=c) for c in checkpoints]
    _legend(fig, handles)
    return fig


def _trained_on_noise(cube: xr.Dataset) -> bool:
    return RunSettings.from_attrs(cube.attrs).training.get("training_noise", 0) > 0


def compare(
    cubes: Mapping[str, xr.Dataset],
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    grid: Sequence[str] = (),
) -> Figure:
    """Every variant in one panel per quantity: D_k, G_k, R_k (columns) against depth, one line
    per variant (mean over seeds, original condition), init dashed, trained solid; an
    undertrained net's trained line (test error above ``ceiling``) is faint.

    ``grid``: the keys (``section.option``) of the experiment's grid. With two or more, colour
    tells the architecture (``model.name``, else the first key) and each value of the other keys
    gets a row of panels, in increasing order, so that the paper's 10 nets x 7 noise levels read
    as 7 rows of 10 colours; otherwise each variant has its colour, in one row. Colours beyond
    the palette come back with open markers. Depth is the named probe point where every variant
    has the same ones, else the relative depth k / K (K probe points, the output last).
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
    fig = Figure(figsize=(3 * 3.0 + 1.8, 2.4 * len(rows) + 0.6))
    panels = fig.subplots(len(rows), 3, squeeze=False, sharex=True, sharey="col")
    errors = {v: trained_error(cube) for v, cube in cubes.items()}
    trained_names, faint = set(), False
    for variant, cube in cubes.items():
        style = _group_style(groups.index(colour_by[variant]))
        trained = trained_checkpoint(cube)
        trained_names.add(trained)
        under = ceiling is not None and errors[variant] > ceiling
        faint |= under
        depth = cube.depth.values
        x = depth if named else depth / depth.max()
        data = at_delta(cube, delta).sel(condition="original")
        for ax, quantity in zip(panels[rows.index(rows_by[variant])], QUANTITIES, strict=True):
            for checkpoint, ls in (("init", "--"), (trained, "-")):
                values = data[quantity].sel(checkpoint=checkpoint)
                values = values.mean("seed") if "seed" in values.dims else values
                alpha = 0.3 if under and checkpoint != "init" else 0.9
                ax.plot(x, values, ls=ls, ms=3, lw=1.1, alpha=alpha, **style)
    first = next(iter(cubes.values()))
    for r, (axes, row) in enumerate(zip(panels, rows, strict=True)):
        bottom = r == len(rows) - 1
        for ax, quantity in zip(axes, QUANTITIES, strict=True):
            _log_y(ax)
            ax.grid(alpha=0.3, which="both")
            ax.set_ylabel(_SYMBOLS[quantity])
            if named:
                _depth_ticks(ax, first, "probe point", labelled=bottom)
            else:
                ax.xaxis.set_major_locator(matplotlib.ticker.MultipleLocator(0.25))
                ax.set_xlabel("relative depth $k / K$ (probe point $k$ of $K$)" if bottom else "")
        if row:  # the row's value, in the margin as in a facet grid
            axes[-1].annotate(
                row, (1.04, 0.5), xycoords="axes fraction", rotation=-90, va="center", fontsize=9
            )
    measured = float(at_delta(first, delta).delta)
    fig.suptitle(
        f"original nets at δ = {measured:.2f} px (the measured one nearest {delta:g} px), "
        "mean over seeds",
        fontsize=10,
    )
    # a variant of its own colour (no rows) says its test error
    noted = {} if row_keys else {v: f" ({error:.1%} error)" for v, error in errors.items()}
    handles = [
        Line2D([], [], ms=3, label=group + noted.get(group, ""), **_group_style(g))
        for g, group in enumerate(groups)
    ]
    handles += [
        Line2D([], [], color="grey", ls="--", label="init"),
        Line2D([], [], color="grey", label=f"trained ({', '.join(sorted(trained_names))})"),
    ]
    if faint:
        handles.append(
            Line2D([], [], color="grey", alpha=0.3, label=f"undertrained (> {ceiling:.0%} error)")
        )
    _legend(fig, handles)
    return fig


def _group_style(index: int) -> dict:
    """Colour and marker of the ``index``-th group: the palette's colours with filled markers,
    then again with open ones."""
    colour = PALETTE[index % len(PALETTE)]
    filled = index < len(PALETTE)
    return {"color": colour, "marker": "o" if filled else "s", "mfc": colour if filled else "white"}


def temperatures(
    cubes: Mapping[str, xr.Dataset], quantity: str = "R", *, ceiling: float | None = None
) -> Figure:
    """``quantity`` against depth at every measured temperature (colour: the typical displacement
    delta), trained (solid) and initial (dashed) nets, original condition, mean over seeds."""
    fig, columns = _panels(len(cubes), 1, 3.2, 3.0)
    cmap = matplotlib.colormaps["viridis"]
    deltas = sorted({float(d) for cube in cubes.values() for d in cube.delta.values})
    for (ax,), (variant, cube) in zip(columns, cubes.items(), strict=True):
        trained = trained_checkpoint(cube)
        for t, delta in enumerate(map(float, cube.delta.values)):
            colour = cmap(deltas.index(delta) / max(1, len(deltas) - 1))
            for checkpoint in ("init", trained):
                values = (
                    cube[quantity]
                    .isel(temperature=t)
                    .sel(checkpoint=checkpoint, condition="original")
                )
                _band(ax, cube.depth.values, values, colour, _STYLE.get(checkpoint, "-"))
        _log_y(ax)
        _title(ax, variant, cube, ceiling)
        _depth_ticks(ax, cube, "probe point")
        ax.set_ylabel(_SYMBOLS.get(quantity, quantity))
        ax.grid(alpha=0.3, which="both")
    handles = [
        Line2D([], [], color=cmap(i / max(1, len(deltas) - 1)), label=f"δ = {d:.2f} px")
        for i, d in enumerate(deltas)
    ]
    trained = sorted({trained_checkpoint(cube) for cube in cubes.values()})
    handles += [Line2D([], [], color="grey", ls="--", label="init")]
    handles += [
        Line2D([], [], color="grey", ls=_STYLE.get(name, "-"), label=f"trained ({name})")
        for name in trained
    ]
    _legend(fig, handles)
    return fig


def error_vs_sensitivity(
    cubes: Mapping[str, xr.Dataset],
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    colour_by: Mapping[str, float] | None = None,
    colour_label: str = "",
    shape_by: Mapping[str, str] | None = None,
) -> Figure:
    """Test error against D, G and R of the output of each trained net (paper figures 1 and 7,
    docs/science.md §10).

    One small marker per seed, one large per variant (mean over seeds), at the temperature
    nearest ``delta`` pixels; a dashed line marks the ``ceiling`` on test error above which a
    net counts as undertrained. ``colour_by`` maps each variant to a number (e.g. its
    training-noise level) shown on a colour scale, and ``shape_by`` to a name (e.g. its
    architecture) shown by the marker's shape; otherwise each variant gets its own colour.
    """
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 3, sharey=True)
    shown = float(at_delta(next(iter(cubes.values())), delta).delta)
    fig.suptitle(
        f"Trained nets at δ = {shown:.2f} px (clean probes): test error against the output's "
        "sensitivities",
        fontsize=10,
    )
    scale = None
    if colour_by:  # one colour per level, in order, each level labelled as it is (0 as 0)
        levels = sorted({float(colour_by[v]) for v in cubes})
        cmap = matplotlib.colormaps["viridis"].resampled(len(levels))
        scale = matplotlib.colors.BoundaryNorm(np.arange(len(levels) + 1) - 0.5, len(levels))
        colours = {v: cmap(levels.index(float(colour_by[v]))) for v in cubes}
    else:
        colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(cubes)}
    names = list(dict.fromkeys((shape_by or {}).get(v, "") for v in cubes))
    shapes = {v: _SHAPES[names.index((shape_by or {}).get(v, "")) % len(_SHAPES)] for v in cubes}
    for ax, quantity in zip(axes, QUANTITIES, strict=True):
        positive = False
        for variant, cube in cubes.items():
            trained = trained_checkpoint(cube)
            out = at_delta(cube, delta)[quantity].isel(layer=-1)
            out = out.sel(checkpoint=trained, condition="original")
            positive |= bool((out > 0).any())  # NaN where the output collapsed
            error = cube.test_error.sel(checkpoint=trained)
            style = {"color": colours[variant], "marker": shapes[variant]}
            ax.scatter(out, error, s=10, alpha=0.5, lw=0, **style)
            ax.scatter(
                float(out.mean()),
                float(error.mean()),
                s=45,
                edgecolor="black",
                lw=0.5,
                label=variant,
                **style,
            )
        if ceiling is not None:
            ax.axhline(ceiling, color="#C00000", ls="--", lw=0.8)
        if positive:  # a log axis needs a positive value (NaN where the output collapsed)
            _log_values(ax)
        ax.set_xlabel(f"${quantity}$ of the output")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test error")
    if scale is not None:
        fig.subplots_adjust(left=0.07, bottom=0.16, top=0.86)  # room for the labels
        mappable = matplotlib.cm.ScalarMappable(norm=scale, cmap=cmap)
        bar = fig.colorbar(
            mappable, ax=axes, label=colour_label, fraction=0.04, ticks=range(len(levels))
        )
        bar.set_ticklabels([f"{level:g}" for level in levels])
    handles = [
        *([] if scale is not None else axes[0].get_legend_handles_labels()[0]),
        *[
            Line2D([], [], color="grey", ls="none", marker=_SHAPES[i % len(_SHAPES)], label=name)
            for i, name in enumerate(names)
            if len(names) > 1
        ],
        Line2D([], [], color="grey", ls="none", marker="o", ms=3, alpha=0.6, label="one seed"),
        Line2D([], [], color="grey", ls="none", marker="o", ms=7, mec="black", label="seed mean"),
    ]
    if ceiling is not None:
        handles.append(Line2D([], [], color="#C00000", ls="--", lw=0.8, label="error ceiling"))
    if scale is None:
        _legend(fig, handles)
    else:  # the colour bar takes the right margin
        axes[-1].legend(handles=handles, fontsize=7, loc="best")
    return fig


_SHAPES = ["o", "s", "^", "D", "v", "P", "X", "*"]
"""Marker shapes telling apart what colour does not (architectures in a noise series)."""


def _log_values(ax) -> None:
    """An x axis of positive measured values, labelled without overlap: linear below a decade of
    span, else logarithmic with plain numbers at the decades and, up to 2.5 decades, between."""
    low, high = ax.get_xlim()
    if low > 0 and np.log10(high / low) < 1:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
        return
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    span = np.log10(high / low)
    ax.xaxis.set_major_formatter(_PLAIN)
    if span < 2.5:
        ax.xaxis.set_minor_locator(
            matplotlib.ticker.LogLocator(subs=(2, 5) if span < 1.5 else (3,))
        )
        ax.xaxis.set_minor_formatter(_PLAIN)
    else:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def spectra(
    spectra_by_variant: Mapping[str, xr.Dataset], *, ceiling: float | None = None
) -> Figure:
    """Share of filter energy on each Laplacian eigenvalue, per layer (paper figure 4,
    docs/science.md §10).

    One panel per variant; one colour per eigenvalue (degenerate modes summed); initialisation
    dashed, trained solid; mean over seeds.
    """
    fig, columns = _panels(len(spectra_by_variant), 1, 3.2, 3.0)
    cmap = matplotlib.colormaps["viridis"]
    eigen, checkpoints = [], []
    for (ax,), (variant, ds) in zip(columns, spectra_by_variant.items(), strict=True):
        _title(ax, variant, ds, ceiling)
        _depth_ticks(ax, ds, "conv layer")
        ax.set_ylabel("share of filter energy")
        ax.grid(alpha=0.3)
        if ds.sizes.get("layer", 0) == 0:
            ax.text(
                0.5,
                0.5,
                "no convolution\nwith a spatial filter",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        by_value = ds.fraction.groupby(ds.eigenvalue.round(6)).sum("mode")
        values = [float(v) for v in by_value.eigenvalue.values]
        eigen = sorted(set(eigen) | set(values))
        for checkpoint in map(str, ds.checkpoint.values):
            checkpoints += [checkpoint] if checkpoint not in checkpoints else []
            for value in values:
                share = by_value.sel(eigenvalue=value, checkpoint=checkpoint)
                colour = cmap(values.index(value) / max(1, len(values) - 1))
                _band(ax, ds.depth.values, share, colour, _STYLE.get(checkpoint, "-"))
    handles = [
        Line2D([], [], color=cmap(i / max(1, len(eigen) - 1)), label=f"λ = {v:g}")
        for i, v in enumerate(eigen)
    ]
    handles += [Line2D([], [], color="grey", ls=_STYLE.get(c, "-"), label=c) for c in checkpoints]
    _legend(fig, handles)
    return fig


def depth_laws(
    cubes: Mapping[str, xr.Dataset],
    fits: xr.Dataset,
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
) -> Figure:
    """D_k, G_k, R_k of the ReLU layers against k with fitted and predicted laws (paper figure 6,
    docs/science.md §10).

    ``fits`` is :func:`diffsens.fits.fit_experiment` of the same cubes at the same ``delta``.

    One column per variant, and one more for its channel-mean representation where it was
    measured (the paper's 1-D figure). Markers: measured (mean over seeds, band over seeds), init
    in grey, trained in the colour of the quantity; in the same colour, the fitted law of the
    trained net (solid) and, where the constant-filter theory applies, the prediction anchored at
    the first layer (dotted). The legend shows each in the colours of the quantities it is drawn
    for, and nothing undrawn.
    """
    shown = [
        (variant, cube, condition)
        for variant, cube in cubes.items()
        for condition in ("original", "channel_mean")
        if condition in cube.condition.values
    ]
    fig, columns = _panels(len(shown), 3, 3.0, 2.3)
    drawn = {"trained": set(), "fitted law": set(), "prediction": set()}  # -> rows drawn in
    for axes, (variant, cube, condition) in zip(columns, shown, strict=True):
        series = depth_series(at_delta(cube, delta)).sel(condition=condition)
        k = series.depth.values
        trained = trained_checkpoint(cube)
        law = str(fits.law.sel(variant=variant).values)
        for row, (ax, quantity) in enumerate(zip(axes, QUANTITIES, strict=True)):
            _band(ax, k, series[quantity].sel(checkpoint="init"), "grey", "--")
            measured = series[quantity].sel(checkpoint=trained)
            _band(ax, k, measured, PALETTE[row], "none")
            drawn["trained"].add(row)
            fit = fits.sel(
                variant=variant, quantity=quantity, checkpoint=trained, condition=condition
            )
            if law in LAWS and np.isfinite(float(fit.exponent)):
                curve = law_curve(k, float(fit.exponent), law)
                ax.plot(k, float(fit.prefactor) * curve, color=PALETTE[row], lw=1.5)
                drawn["fitted law"].add(row)
                first = measured.mean("seed") if "seed" in measured.dims else measured
                exponent = float(fits.predicted.sel(variant=variant, quantity=quantity))
                anchor = (float(k[0]), float(first[0]))
                if _prediction(ax, k, exponent, law, anchor, PALETTE[row]):
                    drawn["prediction"].add(row)
            _law_axes(ax, law)
            _depth_ticks(ax, series, "layer", labelled=ax is axes[-1], log=law == "power")
            ax.set_ylabel(_SYMBOLS[quantity])
        note = ", channel mean" if condition == "channel_mean" else ""
        note += f" ({law} law)" if law in LAWS else " (no law)"
        _title(axes[0], variant, cube, ceiling, note)
    styles = {
        "trained": {"ls": "none", "marker": "o", "ms": 3},
        "fitted law": {"lw": 1.5},
        "prediction": {"ls": ":", "lw": 1.3},
    }
    handles = [Line2D([], [], color="grey", ls="--", marker="o", ms=3)]
    labels = ["init"]
    for label, rows in drawn.items():
        if rows:  # one sample per quantity it is drawn for, in that quantity's colour
            handles.append(
                tuple(Line2D([], [], color=PALETTE[r], **styles[label]) for r in sorted(rows))
            )
            labels.append(label)
    tuples = {tuple: HandlerTuple(ndivide=None, pad=0.2)}
    fig.legend(handles, labels, handler_map=tuples, handlelength=3.5, **_LEGEND)
    _make_room(fig)
    return fig


_INPUTS_STYLE = {
    "padded": {"marker": "o", "label": "authors' input (padded)"},
    "lattice": {"marker": "s", "mfc": "white", "label": "lattice (no overlap)"},
}


def theory(networks: xr.Dataset) -> Figure:
    """D_k, G_k, R_k of constant-filter nets with their fits and predicted laws
    (docs/science.md §8).

    ``networks``: :func:`diffsens.theory.theory_networks` output, over ``(network, depth)``. One
    column per architecture (dimension, filter size, stride), its inputs overlaid (filled: the
    authors', open: the lattice). In the colour of each quantity: measured markers, the fit over
    the layers it used (solid), the law (dotted) anchored on a fit (the lattice's first).
    """
    names = [str(n) for n in networks.network.values]
    order = {}  # architecture -> its networks, lattice first (the law is anchored on its fit)
    for name in sorted(
        names, key=lambda n: str(networks.inputs.sel(network=n).values) != "lattice"
    ):
        ds = networks.sel(network=name)
        order.setdefault((int(ds.dim), int(ds.filter_size), int(ds.stride)), []).append(name)
    architectures = sorted(order, key=lambda a: min(names.index(n) for n in order[a]))
    per_dim = max(sum(a[0] == d for a in architectures) for d in {a[0] for a in architectures})
    fig, columns = _panels(len(architectures), 3, 2.6, 2.0, per_row=per_dim)
    drawn = set()
    for axes, architecture in zip(columns, architectures, strict=True):
        group = [networks.sel(network=n).dropna("depth", subset=["D"]) for n in order[architecture]]
        law = str(group[0].law.values)
        k_all = np.unique(np.concatenate([ds.depth.values for ds in group])).astype(float)
        for row, (ax, quantity) in enumerate(zip(axes, QUANTITIES, strict=True)):
            anchor = None
            for ds in group:
                inputs = str(ds.inputs.values)
                k, y = ds.depth.values.astype(float), ds[quantity].values
                style = dict(_INPUTS_STYLE[inputs])
                style.pop("label")
                ax.plot(k, y, color=PALETTE[row], ls="none", ms=3.5, **style)
                drawn.add(inputs)
                fit = ds.sel(quantity=quantity)
                fitted = ds.fitted.values.astype(bool)
                if law in LAWS and fitted.any() and np.isfinite(float(fit.exponent)):
                    curve = float(fit.prefactor) * law_curve(k[fitted], float(fit.exponent), law)
                    ax.plot(k[fitted], curve, color=PALETTE[row], lw=1.3)
                    drawn.add("fit")
                    middle = k[fitted][len(k[fitted]) // 2]
                    anchor = anchor or (middle, float(ds[quantity].sel(depth=middle)))
            exponent = float(group[0].predicted.sel(quantity=quantity))
            if anchor is None:  # no fit: through the middle layer of the first network
                middle = group[0].depth.values[len(group[0].depth) // 2]
                anchor = (float(middle), float(group[0][quantity].sel(depth=middle)))
            if _prediction(ax, k_all, exponent, law, anchor, PALETTE[row]):
                drawn.add("law")
            _law_axes(ax, law)
            ax.set_ylabel(_SYMBOLS[quantity])
        dim, filter_size, stride = architecture
        axes[0].set_title(f"{dim}-D, F = {filter_size}, s = {stride}", fontsize=9)
        axes[-1].set_xlabel("layer $k$")
    handles = [
        Line2D([], [], color="grey", ls="none", ms=4, **_INPUTS_STYLE[inputs])
        for inputs in _INPUTS_STYLE
        if inputs in drawn
    ]
    if "fit" in drawn:
        handles.append(Line2D([], [], color="grey", lw=1.3, label="fit (asymptotic layers)"))
    if "law" in drawn:
        handles.append(Line2D([], [], color="grey", ls=":", lw=1.3, label="predicted law"))
    _legend(fig, handles)
    return fig


def examples(
    image: np.ndarray,
    moved: np.ndarray,
    propagations: Mapping[str, Sequence[np.ndarray]],
    task: str,
) -> Figure:
    """A scale-detection image and its one-pixel moves, and how a two-pixel input spreads through
    constant-filter nets, layer by layer (paper figure 5, docs/science.md §10).

    ``task`` names the image's task and dataset in the figure's title; a colour bar reads the
    spreading, each layer normalised to its maximum (white: no position left at that layer).
    """
    fig = Figure(figsize=(3.0 * (2 + len(propagations)) + 0.6, 3.5), layout="constrained")
    axes = fig.subplots(1, 2 + len(propagations))
    for ax, picture, title in ((axes[0], image, "input"), (axes[1], moved, "after pixel moves")):
        ax.imshow(picture, cmap="Greys", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax, (name, layers) in zip(axes[2:], propagations.items(), strict=True):
        width = max(len(a) for a in layers)
        grid = np.full((len(layers), width), np.nan)
        for i, a in enumerate(layers):
            grid[i, : len(a)] = a / (a.max() or 1)
        extent = (-0.5, width - 0.5, len(layers) + 0.5, 0.5)
        shown = ax.imshow(
            grid,
            aspect="auto",
            cmap="viridis",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=extent,
        )
        ax.set_title(f"two pixels through {name}", fontsize=9)
        ax.set_xlabel("position")
        ax.set_ylabel("layer $k$")
    if propagations:
        fig.colorbar(shown, ax=axes[2:], label="activation / layer maximum", fraction=0.05)
    fig.suptitle(
        f"{task}: an input and its pixel moves; 1-D constant-filter nets (filter F, stride s)",
        fontsize=10,
    )
    return fig


MAX_COLUMNS = 7
"""Variants per row of panels; a larger grid (the paper's 70 CIFAR variants) wraps."""


def training_curves(
    histories: Mapping[str, Sequence[xr.Dataset]], *, ceiling: float | None = None
) -> Figure:
    """Training loss, train and test error, and learning rate against the epoch (from each
    run's ``history.nc``): one colour per variant, one line per seed.

    Test error solid, train error dotted; epoch 0 is the initialisation (no loss yet). A dashed
    red line marks the ``ceiling`` above which a trained net counts as undertrained.
    """
    fig = Figure(figsize=(11, 3.3))
    loss_ax, error_ax, lr_ax = fig.subplots(1, 3)
    handles, zeros = [], False
    for i, (variant, runs) in enumerate(histories.items()):
        colour = PALETTE[i % len(PALETTE)]
        for history in runs:
            epochs = history.epoch.values
            trained = epochs > 0
            loss = history.train_loss.values
            loss_ax.plot(epochs[trained], loss[trained], color=colour, lw=1)
            zero = trained & (loss == 0)  # off a log axis: marked on its bottom edge instead
            if zero.any():
                zeros = True
                bottom = loss_ax.get_xaxis_transform()
                loss_ax.plot(
                    epochs[zero],
                    0 * epochs[zero],
                    "v",
                    color=colour,
                    transform=bottom,
                    clip_on=False,
                )
            error_ax.plot(epochs, history.test_error.values, color=colour, lw=1.2)
            error_ax.plot(
                epochs[trained], history.train_error.values[trained], color=colour, lw=1, ls=":"
            )
            lr_ax.plot(epochs[trained], history.lr.values[trained], color=colour, lw=1)
        handles.append(Line2D([], [], color=colour, label=variant))
    handles += [
        Line2D([], [], color="grey", label="test error"),
        Line2D([], [], color="grey", ls=":", label="train error"),
    ]
    if ceiling is not None:
        error_ax.axhline(ceiling, color="#C00000", ls="--", lw=0.8)
        handles.append(Line2D([], [], color="#C00000", ls="--", lw=0.8, label="error ceiling"))
    if zeros:
        handles.append(Line2D([], [], color="grey", marker="v", ls="none", label="zero loss"))
    loss_ax.set_yscale("log", nonpositive="mask")  # a hinge loss may reach 0
    lr_ax.set_ylim(bottom=0)  # a constant rate is a flat line, not a zoom on rounding
    for ax, label in ((loss_ax, "training loss"), (error_ax, "error"), (lr_ax, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    _legend(fig, handles)
    return fig


VERDICT_COLOURS = {
    "holds": "#7FCEB9",  # Okabe-Ito bluish green, lightened so that text reads on it
    "reversed": "#EAAE80",  # vermillion, lightened
    "differs": "#F2CF80",  # orange, lightened
    "inconclusive": "#FFFFFF",
    "not applicable": "#E4E4E4",
}
"""Cell colours of the claims figure, by verdict."""


def claims(table: pd.DataFrame, *, delta: float = 1.0, confidence: float = 0.95) -> Figure:
    """The claims of a run at a glance: one row per claim (and quantity), one column per
    experiment and variant, each cell coloured by its verdict and giving the effect with its
    interval, at the measured displacement nearest ``delta`` pixels
    (:func:`diffsens.claims.evaluate_claims`; docs/science.md §11)."""
    shown = claims_at_delta(table, delta)
    columns = list(dict.fromkeys(zip(shown.experiment, shown.variant, strict=True)))
    rows = claim_rows(shown)
    width, height = 1.15, 0.42
    fig = Figure(figsize=(2.9 + width * len(columns), 1.5 + height * len(rows)))
    ax = fig.add_axes(
        (
            2.7 / fig.get_figwidth(),
            0.7 / fig.get_figheight(),
            width * len(columns) / fig.get_figwidth(),
            height * len(rows) / fig.get_figheight(),
        )
    )
    for r in shown.itertuples(index=False):
        x = columns.index((r.experiment, r.variant))
        y = rows.index((r.claim, r.quantity, r.condition))
        ax.add_patch(
            Rectangle(
                (x, y), 1, 1, facecolor=VERDICT_COLOURS[r.verdict], edgecolor="#B0B0B0", lw=0.6
            )
        )
        text = "n/a" if r.verdict == "not applicable" else r.verdict
        if np.isfinite(r.estimate):  # with too few seeds: the estimate, without an interval
            text += f"\n{r.estimate:.3g}"
            text += f"\n[{r.low:.3g}, {r.high:.3g}]" if np.isfinite(r.low) else f"\n{r.n} seed(s)"
        ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=6.5, linespacing=1.1)
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(rows), 0)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [claim_label(*row) for row in rows], fontsize=8)
    ax.set_xticks(
        np.arange(len(columns)) + 0.5,
        [v for _, v in columns],
        fontsize=8,
        rotation=20,
        ha="left",
        rotation_mode="anchor",
    )
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    experiments = list(dict.fromkeys(e for e, _ in columns))
    for experiment in experiments:
        at = [i for i, (e, _) in enumerate(columns) if e == experiment]
        deltas = shown.delta[shown.experiment == experiment].dropna()
        label = experiment + (f" (δ = {deltas.iloc[0]:.3g} px)" if len(deltas) else "")
        ax.axvline(at[0], color="black", lw=1.2)
        ax.text(
            (at[0] + at[-1] + 1) / 2,
            -0.02,
            label,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=9,
            fontweight="bold",
        )
    fig.suptitle(
        f"The paper's claims on this run: verdict, effect [{confidence:.0%} interval], at the "
        f"measured displacement δ nearest {delta:g} px",
        fontsize=10,
        y=1 - 0.12 / fig.get_figheight(),
    )
    handles = [
        Patch(facecolor=c, edgecolor="grey", lw=0.5, label=v) for v, c in VERDICT_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def _panels(
    count: int, rows: int, width: float, height: float, per_row: int = MAX_COLUMNS
) -> tuple[Figure, list]:
    """A figure with a column of ``rows`` panels for each of ``count`` items, wrapped after
    ``per_row`` items (at most :data:`MAX_COLUMNS`); returns the figure and each item's column of
    axes."""
    ncols = min(count, per_row, MAX_COLUMNS)
    blocks = -(-count // ncols)
    fig = Figure(figsize=(width * ncols + 1.4, height * rows * blocks + 0.5))
    grid = fig.subplots(rows * blocks, ncols, squeeze=False)
    columns = []
    for i in range(blocks * ncols):
        block, col = divmod(i, ncols)
        axes = grid[block * rows : (block + 1) * rows, col]
        if i < count:
            for ax in axes:  # depth, layer and site indices are integers
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            columns.append(list(axes))
        else:
            for ax in axes:
                ax.set_visible(False)
    return fig, columns


def _prediction(ax, k, exponent: float, law: str, anchor: tuple[float, float], colour) -> bool:
    """The predicted law as a dotted line in ``colour`` through ``anchor = (k, value)``; whether
    there is one to draw (a law, and a measured anchor to draw it through)."""
    if not (np.isfinite(exponent) and law in LAWS and np.isfinite(anchor[1]) and anchor[1] > 0):
        return False
    k = np.asarray(k, dtype=float)
    shape = law_curve(k, exponent, law) / law_curve([anchor[0]], exponent, law)[0]
    ax.plot(k, anchor[1] * shape, color=colour, ls=":", lw=1.3)
    return True


_PLAIN = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
"""Tick labels as plain numbers (0.2, not 2 x 10^-1)."""


def _log_y(ax) -> None:
    """Log y, labelled in plain numbers at 1, 2 and 5 times powers of 10 where it spans little
    more than a decade, at 1 and 3 times up to 3 decades, else at the decades: a few labels,
    never crowded minor ones. Call after plotting."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    span = np.log10(high / low)
    if span < 3:
        subs = (1.0, 2.0, 5.0) if span < 1.5 else (1.0, 3.0)
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=subs))
        ax.yaxis.set_major_formatter(_PLAIN)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _law_axes(ax, law: str) -> None:
    """:func:`_log_y`; log x too for power laws, so that both laws show as straight lines,
    labelled at powers of 2 in plain numbers. Call after plotting."""
    _log_y(ax)
    if law == "power":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=2))
        ax.xaxis.set_major_formatter(_PLAIN)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")


_LEGEND = {"loc": "center right", "fontsize": 8, "frameon": False}


MAX_NAMED = 24
"""Probe points named on a depth axis; a deeper net's would overlap, and are numbered."""


def _depth_ticks(ax, ds, counted: str, *, labelled: bool = True, log: bool = False) -> None:
    """Tick a depth axis at the layers of ``ds`` (coordinates ``layer`` and ``depth``), labelled
    with their names (rotated where they would touch) up to :data:`MAX_NAMED` layers, else left
    numbered; on a log axis only at powers of 2. ``labelled=False`` leaves the labels to the
    panel below. The axis label says what the depth counts."""
    depth, names = ds.depth.values, [str(n) for n in ds.layer.values]
    if len(names) <= MAX_NAMED:
        at = [i for i, k in enumerate(depth) if not log or np.log2(k).is_integer()]
        inches = ax.get_position().width * ax.figure.get_figwidth()
        wide = len(at) * max((len(names[i]) for i in at), default=0) * 0.065 > 0.8 * inches
        ax.set_xticks(depth[at], [names[i] for i in at], rotation=90 if wide else 0, fontsize=7)
    ax.tick_params(axis="x", labelbottom=labelled)
    if labelled:
        ax.set_xlabel(f"{counted} $k$")


def _legend(fig: Figure, handles) -> None:
    """One legend per figure, outside the panels on the right."""
    fig.legend(handles=handles, **_LEGEND)
    _make_room(fig)


def _make_room(fig: Figure) -> None:
    """Lay the panels out beside the legend on the right, as wide as the legend is (a fixed
    margin let long labels run into the panels' tick labels)."""
    inches = fig.legends[0].get_window_extent().width / fig.dpi
    fig.tight_layout(rect=(0, 0, 1 - (inches + 0.1) / fig.get_figwidth(), 1))


def save(fig: Figure, paths: Sequence[str | os.PathLike], dpi: int = 150) -> None:
    """Write ``fig`` to every path, in the format its suffix names, each file atomically."""
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        write_atomically(path, lambda partial, f=fmt: fig.savefig(partial, dpi=dpi, format=f))
