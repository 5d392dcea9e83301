"""The constant-filter model network, measured exactly, against its depth laws (docs/science.md §8).

One channel, every filter a constant, ReLU after each layer, one-hot inputs. A one-pixel shift
of the input plays the diffeomorphism, noise of the same norm the noise. The depth laws
(:func:`diffsens.laws.predicted_laws`):

* stride 1: receptive fields spread diffusively, D_k ~ k^-1, G_k ~ k^(d/2), R_k ~ k^-(1 + d/2);
* stride s = filter size F (non-overlapping): D_k ~ s^-k, G_k ~ s^(d k), R_k ~ s^-((1 + d) k).

By default the model is measured in the authors' conventions: every one-hot site of an input one
pixel longer than their receptive field, zero padding (F - 1) // 2, a shift by one pixel, and the
noisy input rectified, ``relu(x + eta)``. Every site is probed, so D_k is exact; G_k is averaged
over noise draws until its standard error is below a target at every layer.

The laws are asymptotic twice over: in depth, and in an input much larger than the
representation of one site. The second fails at the authors' input sizes in deep layers, where
the representations of different sites overlap; ``overlap`` measures it, and the fits keep to the
layers where it is small (:func:`asymptotic_layers`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr

from diffsens._checks import check_choice
from diffsens.fits import LawFit, fit_law
from diffsens.laws import QUANTITIES, predicted_laws
from diffsens.models import build
from diffsens.probes import Probe
from diffsens.sensitivity import measure
from diffsens.settings import defaults, group, resolve

__all__ = [
    "INPUTS",
    "asymptotic_layers",
    "constant_filter_sensitivities",
    "fit_table",
    "probe_sites",
    "propagate",
    "theory_networks",
]

INPUTS = ("padded", "lattice")
"""``padded``: the authors' input, every one-hot site of it, zero padding (F - 1) // 2 at every
layer. ``lattice``: an input without edges whose probed sites never overlap (the infinite input
of the laws; :func:`probe_sites`)."""

_MIN_PROBES = 32
"""Probes per noise batch at least: inputs with fewer sites repeat them."""
_MIN_BATCHES = 4
"""Noise batches at least: the standard error of G is the spread of their means."""
_MAX_DRAWS = 1 << 16
"""Noise draws per site at most, whatever the precision asked."""
_CHUNK = 1 << 22
"""Input entries per forward pass (about 32 MB in float64)."""


def probe_sites(dim: int, filter_size: int, stride: int, depth: int, inputs: str) -> torch.Tensor:
    """The one-hot inputs probed, ``(P, 1, side[, side])`` in float64.

    * ``padded`` (the authors'): every site of a side ``F + (F - 1)(s + s^2 + ... + s^L) + 1``,
      one pixel more than their receptive field (theirs counts L + 1 layers);
    * ``lattice``: a ring (torus) made of cells that hold one site each, at the same place in
      its cell, so that no two representations overlap at any layer. Stride 1: 2 cells per axis
      as wide as the receptive field (every site of a ring is alike). Stride s = F: one cell of
      side ``s^L`` per position of a site within such a cell (the positions differ in how many
      layers a one-pixel shift crosses a window border), side ``s^(2L)``.
    """
    check_choice("inputs", inputs, INPUTS)
    if inputs == "padded":
        side = filter_size + (filter_size - 1) * sum(stride**i for i in range(1, depth + 1)) + 1
        cells = [range(side)] * dim
        return _one_hot(side, list(itertools.product(*cells)))
    if stride == 1:
        field = (filter_size - 1) * depth + 1
        cells = itertools.product(range(2), repeat=dim)
        return _one_hot(2 * field, [tuple(field * c for c in cell) for cell in cells])
    if stride != filter_size:
        raise ValueError(
            f"the lattice needs stride 1 or stride = filter size, got stride {stride} and "
            f"filter size {filter_size}"
        )
    block = stride**depth
    cells = itertools.product(range(block), repeat=dim)  # the position within a cell
    return _one_hot(block * block, [tuple(r * (block + 1) for r in cell) for cell in cells])


def _one_hot(side: int, positions: list[tuple[int, ...]]) -> torch.Tensor:
    inputs = torch.zeros(len(positions), 1, *([side] * len(positions[0])), dtype=torch.float64)
    index = torch.tensor(positions).T
    inputs[(torch.arange(len(positions)), 0, *index)] = 1.0
    return inputs


def _network(dim, filter_size, stride, depth, side, inputs="padded"):
    """The constant-filter net for inputs of side ``side`` (it has no parameters and computes in
    the inputs' precision, float64 here)."""
    if inputs == "padded":
        geometry = {"padding": (filter_size - 1) // 2}
    else:  # a ring for stride 1; windows that tile the input (stride = F) need no padding
        geometry = {"periodic": stride == 1}
    return build(
        "constant_filters",
        in_channels=1,
        num_classes=None,
        input_size=side,
        dim=dim,
        filter_size=filter_size,
        stride=stride,
        depth=depth,
        **geometry,
    )


def constant_filter_sensitivities(
    dim: int,
    filter_size: int,
    stride: int,
    depth: int,
    *,
    inputs: str,
    noise: str,
    precision: float,
    seed: int = 0,
) -> xr.Dataset:
    """D_k, G_k, R_k of the constant-filter net at every ReLU, over every one-hot site.

    The move shifts every input by one pixel along its last axis (circularly), so D_k is exact.
    G_k is averaged over batches of noise draws (every site the same number of times in a batch,
    batches seeded ``seed``, ``seed + 1``...) until the standard error of the mean, ``G_se``
    (relative), is at most ``precision`` at every layer; R_k shares it. ``noise`` is a convention of
    :data:`diffsens.perturb.NOISES`. The predicted laws come along as ``law`` (attribute) and
    ``predicted`` (variable over ``quantity``).
    """
    sites = probe_sites(dim, filter_size, stride, depth, inputs)
    side = sites.shape[-1]
    model = _network(dim, filter_size, stride, depth, side, inputs)

    def batch(repeats: int, index: int) -> xr.Dataset:
        """``repeats`` noise draws per site, seeded ``seed + index``."""
        return measure(
            model,
            sites.repeat_interleave(repeats, dim=0),  # repeats leave the denominator unchanged
            deformation="shift",
            noise=noise,
            layers=model.probe_points,
            seed=seed + index,
            batch_size=max(1, _CHUNK // sites[0].numel()),
        ).squeeze("temperature", drop=True)

    repeats = [-(-_MIN_PROBES // len(sites))] * _MIN_BATCHES
    batches = [batch(r, i) for i, r in enumerate(repeats)]
    while (se := _relative_se(batches, repeats).max()) > precision and sum(repeats) < _MAX_DRAWS:
        needed = sum(repeats) * ((se / precision) ** 2 - 1)  # more draws per site, expected
        repeats.append(int(min(1.2 * needed + 1, 4 * sum(repeats), _MAX_DRAWS - sum(repeats))))
        batches.append(batch(repeats[-1], len(batches)))
    ds = batches[0][["D", "num_D", "den"]]
    ds["overlap"] = _overlap(ds.den, _mean_squared_norms(model, sites), len(sites))
    ds["num_G"] = sum(r * b.num_G for r, b in zip(repeats, batches, strict=True)) / sum(repeats)
    ds["G"] = ds.num_G / ds.den
    ds["R"] = ds.D / ds.G
    ds["G_se"] = ("layer", _relative_se(batches, repeats))
    for name in ("num_G", "G", "R"):
        ds[name].attrs = batches[0][name].attrs
    ds.G_se.attrs = {"long_name": "relative standard error of G and R over noise draws"}
    ds.overlap.attrs = {
        "long_name": "overlap of the representations of two different sites",
        "description": "mean <f_i, f_j> over i != j, over mean ||f_i||^2; 0 on an infinite input",
    }
    law, exponents = predicted_laws(dim, filter_size, stride)
    ds["predicted"] = ("quantity", [exponents[q] for q in QUANTITIES])
    ds.predicted.attrs = {"long_name": f"predicted {law}-law exponent in depth k", "units": "1"}
    ds = ds.assign_coords(quantity=list(QUANTITIES))
    ds.attrs = dict(
        law=law,
        dim=dim,
        filter_size=filter_size,
        stride=stride,
        depth=depth,
        inputs=inputs,
        noise=noise,
        input_side=side,
        sites=len(sites),
        draws=sum(repeats),
    )
    return ds


def _mean_squared_norms(model, sites: torch.Tensor) -> xr.DataArray:
    """``mean_i ||f_k(x_i)||^2`` over the sites at every probed layer: the denominator of an input
    so large that the representations of two sites never overlap is twice this."""
    names = list(model.probe_points)
    totals = dict.fromkeys(names, 0.0)

    def add(name: str, features: torch.Tensor) -> None:
        totals[name] += features.square().sum(dtype=torch.float64).item()

    with torch.inference_mode(), Probe(model, names) as probe:
        step = max(1, _CHUNK // sites[0].numel())
        for start in range(0, len(sites), step):
            probe(sites[start : start + step], reduce=add)
    return xr.DataArray([totals[n] / len(sites) for n in names], coords={"layer": names})


def _overlap(den: xr.DataArray, squared_norms: xr.DataArray, sites: int) -> xr.DataArray:
    """The mean inner product of the representations of two different sites over their mean
    squared norm, from ``den = 2 (1 - 1/P) (mean ||f||^2 - mean_(i != j) <f_i, f_j>)``."""
    return 1 - den / (2 * (1 - 1 / sites) * squared_norms)


def asymptotic_layers(overlap: np.ndarray, max_overlap: float) -> np.ndarray:
    """Which layers (k = 1, 2, ... in order) are in the laws' asymptotic regime: of those whose
    ``overlap`` is at most ``max_overlap`` (the input is effectively infinite there), the deeper
    half (the laws are asymptotic in depth), at least 3 where there are."""
    small = np.flatnonzero(np.asarray(overlap) <= max_overlap)
    keep = small[-max(min(3, len(small)), -(-len(small) // 2)) :] if len(small) else small
    chosen = np.zeros(len(overlap), dtype=bool)
    chosen[keep] = True
    return chosen


def _relative_se(batches: list[xr.Dataset], repeats: list[int]) -> np.ndarray:
    """Standard error of the mean G over batches of ``repeats`` draws per site each, relative to
    it, per layer: the spread of the batch means weighted by their sizes."""
    G = np.stack([b.G.values for b in batches])
    n = np.asarray(repeats, dtype=float)[:, None]
    mean = (n * G).sum(0) / n.sum()
    variance = (n * (G - mean) ** 2).sum(0) / (len(G) - 1)  # of one draw per site
    return np.sqrt(variance / n.sum()) / mean


def propagate(inputs: torch.Tensor, dim: int, filter_size: int, stride: int, depth: int) -> list:
    """Activations of ``inputs (C=1)`` after every layer of a constant-filter net with the
    authors' padding, as NumPy arrays (for pictures of how an input spreads with depth)."""
    model = _network(dim, filter_size, stride, depth, inputs.shape[-1])
    out, x = [], inputs.double()
    with torch.no_grad():
        for name, module in model.named_children():
            x = module(x)
            if name.startswith("relu"):
                out.append(x[0, 0].numpy().copy())
    return [np.asarray(a) for a in out]


def theory_networks(
    settings: Mapping | None = None, *, seed: int = 0
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Measure every constant-filter network of the ``theory`` settings (``diffsens.settings``;
    defaults filled in) and fit its predicted law on the layers of its asymptotic regime
    (:func:`asymptotic_layers`; no fit with fewer than 3).

    Returns the sensitivities over ``(network, depth)``, with ``fitted`` marking the layers of
    each fit and ``exponent``, ``stderr``, ``prefactor`` over ``(network, quantity)``, and the
    same fits as a table, beside the predicted exponents.
    """
    cfg = resolve("theory", settings)
    if not cfg["networks"]:
        raise ValueError(
            "theory.networks is empty: there is no constant-filter network to measure; list "
            "some under theory.networks (as the default config does), or do not ask for the "
            "theory's outputs (results/theory/, constant_filters and examples figures)"
        )
    network_defaults = defaults(group("theory")["properties"]["networks"]["items"])
    noise, precision, max_overlap = cfg["noise"], cfg["precision"], cfg["max_overlap"]
    measured = []
    for spec in cfg["networks"]:
        ds = constant_filter_sensitivities(
            **{**network_defaults, **spec}, noise=noise, precision=precision, seed=seed
        )
        fitted = asymptotic_layers(ds.overlap.values, max_overlap)
        if ds.attrs["law"] == "none" or fitted.sum() < 3:
            fitted[:] = False
        ds["fitted"] = ("layer", fitted)
        ds.fitted.attrs = {"long_name": "layer used by the fit of the law"}
        fits = [
            fit_law(ds.depth.values[fitted], ds[q].values[fitted], ds.attrs["law"])
            if fitted.any()
            else LawFit(np.nan, np.nan, np.nan)
            for q in QUANTITIES
        ]
        for field in LawFit._fields:
            ds[field] = ("quantity", [getattr(fit, field) for fit in fits])
        name = "{dim}d_F{filter_size}_s{stride}_{inputs}".format(**ds.attrs)
        measured.append(ds.swap_dims(layer="depth").drop_vars("layer").assign_attrs(network=name))
    names = [ds.attrs["network"] for ds in measured]
    stacked = xr.concat(
        measured, pd.Index(names, name="network"), join="outer", combine_attrs="drop"
    )
    stacked["fitted"] = stacked.fitted.fillna(False).astype(bool)
    for attr in ("law", "dim", "filter_size", "stride", "inputs", "input_side", "sites", "draws"):
        stacked[attr] = ("network", [ds.attrs[attr] for ds in measured])
    stacked.exponent.attrs = {"long_name": "fitted exponent of the law in depth k"}
    stacked.stderr.attrs = {"long_name": "standard error of the fitted exponent"}
    stacked.attrs.update(noise=noise, precision=precision, max_overlap=max_overlap, seed=seed)
    return stacked, fit_table(stacked)


def fit_table(networks: xr.Dataset) -> pd.DataFrame:
    """One row per network and quantity: the layers whose overlap is small, the layers fitted,
    the exponent with its standard error, the predicted exponent, their difference and its
    share of the prediction."""
    rows = []
    for name in map(str, networks.network.values):
        ds = networks.sel(network=name).dropna("depth", subset=["D"])
        k = ds.depth.values[ds.fitted.values]
        low = ds.depth.values[ds.overlap.values <= networks.attrs["max_overlap"]]
        for quantity in QUANTITIES:
            fit = ds.sel(quantity=quantity)
            rows.append(
                {
                    "network": name,
                    "law": str(ds.law.values),
                    "depth": len(ds.depth),
                    "low_overlap": f"{low.min()}-{low.max()}" if len(low) else "",
                    "quantity": quantity,
                    "layers": f"{k.min()}-{k.max()}" if len(k) else "",
                    "exponent": float(fit.exponent),
                    "stderr": float(fit.stderr),
                    "predicted": float(fit.predicted),
                }
            )
    table = pd.DataFrame(rows)
    table["deviation"] = table["exponent"] - table["predicted"]
    table["relative"] = table["deviation"] / table["predicted"].abs()
    return table
