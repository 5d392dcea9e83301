"""D_k, G_k, R_k of the ReLU layers against k with their fitted and predicted laws."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from diffsens.fits import at_delta, depth_series, trained_checkpoint
from diffsens.laws import LAWS, QUANTITIES, law_curve
from diffsens.plots.style import (
    FIT_STYLE,
    PREDICTION_STYLE,
    SYMBOLS,
    band,
    checkpoint_handles,
    depth_ticks,
    legend,
    log2_axis,
    log_axis,
    panels,
    px,
    seed_band_handle,
    styled,
    suptitle,
    title,
)

__all__ = ["depth_laws", "law_formula", "prediction"]

_MEASURED = {"color": "black", "marker": "o"}


def law_formula(law: str) -> str:
    """How the exponent a enters the law, for titles."""
    return {"power": r"$\propto k^{a}$", "exponential": r"$\propto e^{a k}$"}.get(law, "")


def prediction(ax, k, exponent: float, law: str, anchor: tuple[float, float], colour) -> bool:
    """The predicted law, dotted in ``colour``, through ``anchor = (k, value)``; whether there
    is one to draw (a law, and a measured anchor to draw it through)."""
    if not (np.isfinite(exponent) and law in LAWS and np.isfinite(anchor[1]) and anchor[1] > 0):
        return False
    k = np.asarray(k, dtype=float)
    shape = law_curve(k, exponent, law) / law_curve([anchor[0]], exponent, law)[0]
    ax.plot(k, anchor[1] * shape, color=colour, **PREDICTION_STYLE)
    return True


def _exponents(fit: xr.Dataset, predicted: float) -> str:
    """The fitted exponent with its interval, and the predicted one, for a panel's corner."""
    text = f"a = {float(fit.exponent):.2f}"
    if np.isfinite(float(fit.low)) and np.isfinite(float(fit.high)):
        text += f" [{float(fit.low):.2f}, {float(fit.high):.2f}]"
    if np.isfinite(predicted):
        text += f"\npredicted {predicted:.2f}"
    return text


@styled
def depth_laws(
    cubes: Mapping[str, xr.Dataset],
    fits: xr.Dataset,
    *,
    delta: float = 1.0,
    ceiling: float | None = None,
    experiment: str = "",
) -> Figure:
    """D_k, G_k, R_k of the ReLU layers against k with fitted and predicted laws (paper figure 6,
    docs/science.md §10).

    ``fits`` is :func:`diffsens.fits.fit_experiment` of the same cubes at the same ``delta``.
    One column per variant, and one more for its channel-mean representation where it was
    measured (the paper's 1-D figure). Measured: mean over seeds with their band, init dashed,
    trained solid; the law fitted to the trained net thick and pale beneath, with its exponent
    and interval written in the panel; where the constant-filter theory applies, the prediction
    anchored at the first layer, dotted, its exponent beside the fitted one. The legend lists
    only what is drawn.
    """
    shown = [
        (variant, cube, condition)
        for variant, cube in cubes.items()
        for condition in ("original", "channel_mean")
        if condition in cube.condition.values
    ]
    fig, columns = panels(len(shown), 3, 2.3, 1.75)
    drawn, trained_names, banded, deltas = set(), set(), False, set()
    for axes, (variant, cube, condition) in zip(columns, shown, strict=True):
        at = at_delta(cube, delta)
        deltas.add(float(at.delta))
        series = depth_series(at).sel(condition=condition)
        k = series.depth.values
        trained = trained_checkpoint(cube)
        trained_names.add(trained)
        law = str(fits.law.sel(variant=variant).values)
        predicted_here = False
        for ax, quantity in zip(axes, QUANTITIES, strict=True):
            banded |= band(ax, k, series[quantity].sel(checkpoint="init"), _MEASURED, "--")
            measured = series[quantity].sel(checkpoint=trained)
            banded |= band(ax, k, measured, _MEASURED, "-")
            fit = fits.sel(
                variant=variant, quantity=quantity, checkpoint=trained, condition=condition
            )
            predicted = float(fits.predicted.sel(variant=variant, quantity=quantity))
            if law in LAWS and np.isfinite(float(fit.exponent)):
                curve = float(fit.prefactor) * law_curve(k, float(fit.exponent), law)
                ax.plot(k, curve, color="black", zorder=1, **FIT_STYLE)
                drawn.add("fit")
                first = measured.mean("seed") if "seed" in measured.dims else measured
                anchor = (float(k[0]), float(first[0]))
                predicts = prediction(ax, k, predicted, law, anchor, "black")
                drawn |= {"prediction"} if predicts else set()
                predicted_here |= predicts
                text = _exponents(fit, predicted if predicts else np.nan)
                ax.text(
                    0.97,
                    0.95,
                    text,
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                )
            log_axis(ax)
            if ax.texts:  # headroom for the exponents, above the data
                low, high = ax.get_ylim()
                ax.set_ylim(low, high * (high / low) ** 0.4)
            if law == "power":
                log2_axis(ax)
            depth_ticks(ax, series, "layer", labelled=ax is axes[-1], log=law == "power")
            ax.set_ylabel(SYMBOLS[quantity])
        heading = variant + (", channel mean" if condition == "channel_mean" else "")
        if law in LAWS:
            heading += f"\n{law} fit {law_formula(law)}"
            heading += "" if predicted_here else ", no law predicted"
        else:
            heading += "\n(no law applies)"
        title(axes[0], heading, cube, ceiling)
    handles = checkpoint_handles(trained_names, colour="black")
    handles += [seed_band_handle()] if banded else []
    if "fit" in drawn:
        handles.append(Line2D([], [], color="black", label="fitted law, exponent a", **FIT_STYLE))
    if "prediction" in drawn:
        handles.append(Line2D([], [], color="black", label="predicted law", **PREDICTION_STYLE))
    at = ", ".join(px(d) for d in sorted(deltas))
    suptitle(fig, experiment, f"depth laws of the ReLU layers at δ = {at}")
    legend(fig, handles)
    return fig
