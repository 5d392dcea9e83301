"""The constant-filter model network and its depth laws (docs/science.md §8).

One channel, every filter a constant, ReLU after each layer, one-hot inputs. A one-pixel shift
of the input plays the diffeomorphism; rectified noise of the same norm plays the noise. In this
model the depth dependence of D_k and G_k can be computed:

* stride 1: receptive fields spread diffusively, D_k ~ k^-1, G_k ~ k^(d/2), R_k ~ k^-(1 + d/2);
* stride s = filter size F (non-overlapping): D_k ~ s^-k, G_k ~ s^(d k), R_k ~ s^-((1 + d) k).

:func:`constant_filter_sensitivities` measures the model with the same estimator as any network,
:func:`diffsens.laws.predicted_laws` states the laws for comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from diffsens.fits import fit_law
from diffsens.laws import QUANTITIES, predicted_laws
from diffsens.models import build
from diffsens.sensitivity import measure

__all__ = [
    "constant_filter_sensitivities",
    "one_hot_inputs",
    "propagate",
    "theory_networks",
]


def _network(dim, filter_size, stride, depth, size, **options):
    """The constant-filter net in float64, for inputs of side ``size``."""
    return build(
        "constant_filters",
        in_channels=1,
        num_classes=None,
        input_size=size,
        dim=dim,
        filter_size=filter_size,
        stride=stride,
        depth=depth,
        **options,
    ).double()


def _input_size(filter_size: int, stride: int, depth: int) -> int:
    if stride == 1:
        # on a ring: wide enough that the receptive field (depth (F - 1) + 1) stays far from
        # wrapping round
        return 8 * depth * (filter_size - 1) + 16
    # non-overlapping: the last layer keeps 4 positions, so that inputs stay distinguishable
    return 4 * stride**depth


def one_hot_inputs(
    dim: int, size: int, margin: int, sites: int, repeats: int = 1, seed: int = 0
) -> torch.Tensor:
    """One-hot inputs ``(sites * repeats, 1, size[, size])`` (float64): ``sites`` distinct pixel
    sites drawn at random at least ``margin`` away from every border, each ``repeats`` times."""
    span = size - 2 * margin
    if span < 1:
        raise ValueError(f"no pixel lies {margin} pixels inside an input of size {size}")
    sites = min(sites, span**dim)
    generator = torch.Generator().manual_seed(seed)
    flat = torch.randperm(span**dim, generator=generator)[:sites]
    coords = [(flat // span**axis) % span + margin for axis in reversed(range(dim))]
    inputs = torch.zeros(sites, 1, *([size] * dim), dtype=torch.float64)
    inputs[(torch.arange(sites), 0, *coords)] = 1.0
    return inputs.repeat_interleave(repeats, dim=0)


def constant_filter_sensitivities(
    dim: int = 1,
    filter_size: int = 2,
    stride: int = 1,
    depth: int = 6,
    *,
    sites: int = 64,
    repeats: int = 8,
    seed: int = 0,
) -> xr.Dataset:
    """D_k, G_k, R_k of the constant-filter net at every ReLU, on one-hot inputs.

    Stride 1 runs on a ring (torus in 2-D), non-overlapping strides on an input of 4 s^depth.
    ``sites`` random pixel sites, one pixel from the borders so that the move never clips,
    each probed ``repeats`` times with its own noise draw (repeating every input leaves the
    denominator unchanged). The predicted laws come along as
    ``law`` (attribute) and ``predicted`` (variable over ``quantity``).
    """
    size = _input_size(filter_size, stride, depth)
    model = _network(dim, filter_size, stride, depth, size, periodic=stride == 1)
    inputs = one_hot_inputs(dim, size, 1, sites, repeats, seed)  # moves never meet an edge
    ds = measure(
        model,
        inputs,
        deformation="pixel_move",
        noise="rectified",
        layers=model.probe_points,
        seed=seed,
        batch_size=128,
    ).squeeze("temperature", drop=True)
    law, exponents = predicted_laws(dim, filter_size, stride)
    ds["predicted"] = ("quantity", [exponents[q] for q in QUANTITIES])
    ds.predicted.attrs = {
        "long_name": f"predicted {law}-law exponent in depth k",
        "units": "1",
    }
    ds = ds.assign_coords(quantity=list(QUANTITIES))
    ds.attrs.update(
        law=law,
        dim=dim,
        filter_size=filter_size,
        stride=stride,
        depth=depth,
        input_size=size,
        sites=len(inputs) // repeats,
        repeats=repeats,
    )
    return ds


def propagate(inputs: torch.Tensor, dim: int, filter_size: int, stride: int, depth: int) -> list:
    """Activations of ``inputs (C=1)`` after every layer of a constant-filter net, as NumPy arrays
    (for pictures of how an input spreads with depth)."""
    padding = (filter_size - 1) // 2 if stride == 1 else 0
    model = _network(dim, filter_size, stride, depth, inputs.shape[-1], padding=padding)
    out, x = [], inputs.double()
    with torch.no_grad():
        for name, module in model.named_children():
            x = module(x)
            if name.startswith("relu"):
                out.append(x[0, 0].numpy().copy())
    return [np.asarray(a) for a in out]


def theory_networks(
    networks: list[dict], *, sites: int = 64, repeats: int = 8, seed: int = 0
) -> tuple[xr.Dataset, pd.DataFrame]:
    """Measure every constant-filter network of ``networks`` and fit its predicted law.

    Returns the sensitivities over ``(network, depth)`` and a table with, per network and
    quantity, the fitted exponent beside the predicted one. Power laws are fitted on the deeper
    half of the layers (the laws are asymptotic in k), exponentials on all layers.
    """
    measured, rows = [], []
    for spec in networks:
        ds = constant_filter_sensitivities(**spec, sites=sites, repeats=repeats, seed=seed)
        name = f"{spec['dim']}d_F{spec['filter_size']}_s{spec['stride']}"
        law = ds.attrs["law"]
        k = ds.depth.values
        deep = k >= (k.max() + 1) / 2 if law == "power" else np.ones_like(k, dtype=bool)
        for quantity in QUANTITIES:
            fitted = (
                fit_law(k[deep], ds[quantity].values[deep], law)[0] if law != "none" else np.nan
            )
            rows.append(
                {
                    "network": name,
                    "law": law,
                    "quantity": quantity,
                    "exponent": fitted,
                    "predicted": float(ds.predicted.sel(quantity=quantity)),
                }
            )
        measured.append(ds.swap_dims(layer="depth").drop_vars("layer").assign_attrs(network=name))
    names = [ds.attrs["network"] for ds in measured]
    stacked = xr.concat(
        measured, pd.Index(names, name="network"), join="outer", combine_attrs="drop"
    )
    for attr in ("law", "dim", "filter_size", "stride"):
        stacked[attr] = ("network", [ds.attrs[attr] for ds in measured])
    table = pd.DataFrame(rows)
    table["deviation"] = table["exponent"] - table["predicted"]
    return stacked, table
