"""Figure functions on xarray objects: each takes cubes (or histories, spectra, tables) and
returns a matplotlib Figure; :func:`save` writes it.

One module per figure, named as the figure's file is, and :mod:`diffsens.plots.style` holding
the visual language they share (colours, line styles, seed bands, axes, legend): change the
look there, a figure in its own module.
"""

from diffsens.plots.claims import VERDICT_COLOURS, claims
from diffsens.plots.compare import compare
from diffsens.plots.depth_laws import depth_laws
from diffsens.plots.error_vs_sensitivity import error_vs_sensitivity
from diffsens.plots.examples import examples
from diffsens.plots.layerwise import layerwise
from diffsens.plots.spectra import spectra
from diffsens.plots.style import MAX_COLUMNS, MAX_NAMED, VARIANT_COLOURS, save
from diffsens.plots.temperatures import temperatures
from diffsens.plots.theory import theory
from diffsens.plots.training import training_curves

__all__ = [
    "MAX_COLUMNS",
    "MAX_NAMED",
    "VARIANT_COLOURS",
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
