"""Training curves: loss, train and test error, learning rate per epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.ticker
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.plots.style import (
    ALERT,
    GREY,
    band,
    identical,
    legend,
    log_axis,
    percent,
    seed_band_handle,
    shared_label,
    styled,
    suptitle,
    variant_style,
)

__all__ = ["training_curves"]

_PANELS = (
    ("train_loss", "training loss", "log"),
    ("train_error", "train error", "percent"),
    ("test_error", "test error", "percent"),
    ("lr", "learning rate", "log"),
)


def _seeds(runs: Sequence[xr.Dataset], variable: str) -> xr.DataArray:
    """One variable of every seed's history over ``(seed, epoch)``; a seed that stopped early
    (at zero loss) is missing (NaN) after its last epoch, so the mean is over the seeds still
    training."""
    return xr.concat([run[variable] for run in runs], "seed", join="outer")


@styled
def training_curves(
    histories: Mapping[str, Sequence[xr.Dataset]],
    *,
    ceiling: float | None = None,
    experiment: str = "",
) -> Figure:
    """Training loss, train error, test error and learning rate (one panel each) against the
    epoch, from each run's ``history.nc``: one colour per variant, its mean over seeds as a line
    and their range as a band.

    Errors in percent on a linear axis, loss and learning rate on log axes (a rate of 0.002
    beside one of 0.05 stays visible); variants with the same schedule share one grey rate
    line, named in the legend; epoch 0 is the initialisation (a test error, no loss
    yet). A loss of exactly 0 (a hinge loss reached zero) cannot sit on a log axis and is
    marked on its bottom edge. A dashed red line marks the ``ceiling`` above which a trained
    net counts as undertrained.
    """
    fig = Figure(figsize=(9.2, 2.3))
    axes = dict(zip((p[0] for p in _PANELS), fig.subplots(1, len(_PANELS)), strict=True))
    handles, banded, zeros = [], False, False
    rates = {v: _seeds(runs, "lr").mean("seed").values for v, runs in histories.items()}
    shared = [g for g in identical(rates) if len(g) > 1]  # a schedule only once, in grey
    for i, (variant, runs) in enumerate(histories.items()):
        style = variant_style(i)
        for variable, ax in axes.items():
            group = next((g for g in shared if variant in g), None)
            if variable == "lr" and group is not None:
                if group[0] != variant:
                    continue
                style = {"color": GREY, "marker": "o", "mfc": GREY}
            values = _seeds(runs, variable)
            if variable != "test_error":  # nothing trained at epoch 0
                values = values.sel(epoch=values.epoch > 0)
            if variable == "train_loss":
                zero = (values == 0).any("seed")
                if bool(zero.any()):  # off a log axis: marked on its bottom edge instead
                    zeros = True
                    at = values.epoch.values[zero.values]
                    ax.plot(
                        at,
                        0 * at,
                        "v",
                        color=style["color"],
                        ms=5,
                        clip_on=False,
                        transform=ax.get_xaxis_transform(),
                    )
                values = values.where(values > 0)
            banded |= band(ax, values.epoch.values, values, style)
        handles.append(Line2D([], [], label=variant, **variant_style(i)))
    handles += [
        Line2D([], [], color=GREY, marker="o", label=shared_label("learning rate", g))
        for g in shared
    ]
    if banded:
        handles.append(seed_band_handle())
    if ceiling is not None:
        axes["test_error"].axhline(ceiling, color=ALERT, ls="--", lw=0.9)
        handles.append(Line2D([], [], color=ALERT, ls="--", lw=0.9, label="error ceiling"))
    if zeros:
        handles.append(Line2D([], [], color=GREY, marker="v", ls="none", label="loss of 0"))
    for variable, label, scale in _PANELS:
        ax = axes[variable]
        ax.set_ylabel(label)
        ax.set_xlabel("epoch")
        ax.grid(which="major")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if scale == "log":
            log_axis(ax)
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(percent))
    suptitle(fig, experiment, "training, mean over seeds")
    legend(fig, handles)
    return fig
