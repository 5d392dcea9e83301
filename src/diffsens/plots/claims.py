"""The paper's claims on a run at a glance: a grid of verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from diffsens.claims import at_delta as claims_at_delta
from diffsens.claims import claim_label, claim_rows
from diffsens.plots.style import MIN_FONT, px, styled

__all__ = ["VERDICT_COLOURS", "claims"]

VERDICT_COLOURS = {
    "holds": "#7FCEB9",  # Okabe-Ito bluish green, lightened so that text reads on it
    "reversed": "#EAAE80",  # vermillion, lightened
    "differs": "#F2CF80",  # orange, lightened
    "inconclusive": "#FFFFFF",
    "not applicable": "#E4E4E4",
}
"""Cell colours of the claims figure, by verdict."""


MIN_WIDTH = 8.0
"""Inches the title and the verdicts' key need, however few the columns."""


@styled
def claims(table: pd.DataFrame, *, delta: float = 1.0, confidence: float = 0.95) -> Figure:
    """The claims of a run at a glance: one row per claim (and quantity), one column per
    experiment and variant, each cell coloured by its verdict and giving the effect with its
    interval, at the measured displacement nearest ``delta`` pixels
    (:func:`diffsens.claims.evaluate_claims`; docs/science.md §11)."""
    shown = claims_at_delta(table, delta)
    columns = list(dict.fromkeys(zip(shown.experiment, shown.variant, strict=True)))
    rows = claim_rows(shown)
    width, height = 1.15, 0.42
    table_width = 2.9 + width * len(columns)
    fig = Figure(figsize=(max(table_width, MIN_WIDTH), 1.5 + height * len(rows)))
    ax = fig.add_axes(  # centred under the title where the title is the wider
        (
            (2.7 + (fig.get_figwidth() - table_width) / 2) / fig.get_figwidth(),
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
        ax.text(
            x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=MIN_FONT, linespacing=1.1
        )
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(rows), 0)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [claim_label(*row) for row in rows])
    ax.set_xticks(
        np.arange(len(columns)) + 0.5,
        [v for _, v in columns],
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
        label = experiment + (f" (δ = {px(deltas.iloc[0])})" if len(deltas) else "")
        ax.axvline(at[0], color="black", lw=1.2)
        ax.text(
            (at[0] + at[-1] + 1) / 2,
            -0.02,
            label,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontweight="bold",
        )
    fig.suptitle(
        f"The paper's claims on this run: verdict, effect [{confidence:.0%} interval], at the "
        f"measured displacement δ nearest {delta:g} px",
        y=1 - 0.12 / fig.get_figheight(),
    )
    handles = [
        Patch(facecolor=c, edgecolor="grey", lw=0.5, label=v) for v, c in VERDICT_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), frameon=False)
    return fig
