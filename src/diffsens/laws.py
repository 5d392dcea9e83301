"""Depth laws: how D_k, G_k and R_k scale with the depth k, predicted and drawn.

Two laws (docs/science.md, the constant-filter model):

* ``"power"``: y_k = A k^a (stride 1: receptive fields spread diffusively);
* ``"exponential"``: y_k = A exp(a k) (every layer downsamples; exp(a) is the factor per layer,
  e.g. 1/2 for D_k ~ 2^-k).

The constant-filter predictions in d dimensions: stride 1 gives D ~ k^-1, G ~ k^(d/2),
R ~ k^-(1 + d/2); stride s = filter size gives D ~ s^-k, G ~ s^(d k), R ~ s^-((1 + d) k).
Fits (:mod:`diffsens.fits`), the theory (:mod:`diffsens.theory`) and the figures
(:mod:`diffsens.plots`) all take their laws from here.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LAWS", "QUANTITIES", "law_curve", "model_law", "predicted_laws"]

LAWS = ("power", "exponential")
QUANTITIES = ("D", "G", "R")


def predicted_laws(dim: int, filter_size: int, stride: int) -> tuple[str, dict[str, float]]:
    """``(law, exponents)`` for a constant-filter net.

    ``law`` is ``"power"`` (quantity ~ k^exponent) for stride 1, ``"exponential"`` (quantity ~
    exp(exponent k)) for stride = filter size, ``"none"`` otherwise (no prediction; exponents NaN).
    """
    if stride == 1:
        return "power", {"D": -1.0, "G": dim / 2, "R": -1.0 - dim / 2}
    if stride == filter_size:
        rate = math.log(stride)
        return "exponential", {"D": -rate, "G": dim * rate, "R": -(1 + dim) * rate}
    return "none", dict.fromkeys(QUANTITIES, math.nan)


def model_law(spec: dict) -> tuple[str, dict[str, float]]:
    """The depth law expected of a ``simple_cnn`` or ``constant_filters`` spec, and its exponents.

    Stride 1 without pooling: a power law (constant-filter exponents); stride equal to the filter
    size without pooling: an exponential (constant-filter rates); any other downsampling per layer
    (pooling, other strides): an exponential with no prediction; other architectures: ``"none"``.
    """
    if spec.get("name") not in ("simple_cnn", "constant_filters"):
        return "none", dict.fromkeys(QUANTITIES, math.nan)
    dim = spec.get("dim", 2 if spec["name"] == "simple_cnn" else 1)
    filter_size = spec.get("filter_size", 3 if spec["name"] == "simple_cnn" else 2)
    strides = spec.get("stride", 1)
    strides = set(strides) if isinstance(strides, list) else {strides}
    pooled = spec.get("pooling", "none") != "none"
    if len(strides) == 1 and not pooled:
        law, exponents = predicted_laws(dim, filter_size, strides.pop())
        if law != "none":
            return law, exponents
    return "exponential", dict.fromkeys(QUANTITIES, math.nan)


def law_curve(k, exponent: float, law: str) -> np.ndarray:
    """The shape of ``law`` at depths ``k``: ``k^exponent`` or ``exp(exponent k)``."""
    if law not in LAWS:
        raise ValueError(f"law must be one of {list(LAWS)}, got {law!r}")
    k = np.asarray(k, dtype=float)
    return k**exponent if law == "power" else np.exp(exponent * k)
