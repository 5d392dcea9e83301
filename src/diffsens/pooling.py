"""Spatial versus channel pooling (docs/science.md §7).

The Laplacian spectrum of the filters tells how much of their energy sits on smooth (low
eigenvalue) patterns: spatial pooling shows as energy moving to eigenvalue 0. The channel-shuffle
test keeps every filter's spatial profile but scrambles which input channels
it combines: if a trained net's stability survives the shuffle, it came from spatial pooling
(smooth filters); if it is lost, from channel pooling (channels combining deformed versions of a
feature).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

__all__ = [
    "checkpoint_spectra",
    "conv_kernel_shapes",
    "grid_laplacian_modes",
    "laplacian_spectrum",
    "laplacian_spectrum_empty",
    "path_laplacian_modes",
    "shuffle_channels",
]


def shuffle_channels(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose conv weights have their input-channel axis permuted.

    One random permutation per layer, shared by all of that layer's filters; convolutions with a
    single input channel per group (depthwise, or the first layer of a grey-scale net) have
    nothing to permute and are left alone. Linear layers are untouched.
    """
    shuffled = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in shuffled.modules():
            if isinstance(module, nn.modules.conv._ConvNd) and module.weight.shape[1] > 1:
                order = torch.randperm(module.weight.shape[1], generator=generator)
                module.weight.copy_(module.weight[:, order.to(module.weight.device)])
    return shuffled


def path_laplacian_modes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``2 - 2 cos(pi a / n)`` and orthonormal eigenvectors (columns, cosines) of the
    Laplacian of a path of ``n`` pixels, lowest first; mode 0 is the constant."""
    j = np.arange(n)
    a = np.arange(n)
    vectors = np.cos(np.pi * a[None, :] * (j[:, None] + 0.5) / n)
    vectors /= np.linalg.norm(vectors, axis=0, keepdims=True)
    return 2 - 2 * np.cos(np.pi * a / n), vectors


def grid_laplacian_modes(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(M,)`` and eigenvectors ``(prod(shape), M)`` of the Laplacian of a pixel grid
    (4-neighbour in 2-D), sorted by eigenvalue.

    The grid Laplacian is the Kronecker sum of path Laplacians, so its eigenvectors are products
    of 1-D cosines: a canonical basis even inside degenerate eigenspaces (3x3: 0,1,1,2,3,3,4,4,6).
    """
    values, vectors = np.zeros(1), np.ones((1, 1))
    for n in shape:
        v, u = path_laplacian_modes(n)
        values = (values[:, None] + v[None, :]).ravel()
        vectors = np.einsum("pa,qb->pqab", vectors, u).reshape(vectors.shape[0] * n, -1)
    order = np.argsort(values, kind="stable")
    return values[order], vectors[:, order]


def conv_kernel_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Kernel shape of every convolution, by module path."""
    return {
        name: tuple(module.weight.shape[2:])
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.conv._ConvNd)
    }


def laplacian_spectrum(model: nn.Module, kernel_shape: tuple[int, ...] | None = None) -> xr.Dataset:
    """Energy of the conv filters on each Laplacian eigenvector of their pixel grid
    (docs/science.md §7).

    Every 2-D (or 1-D) slice ``weight[out, in]`` of every convolution with ``kernel_shape``
    (default: the most common shape with more than one pixel) is projected on the eigenvectors;
    ``energy`` is the mean squared projection over slices, ``fraction`` its share of the layer's
    total. At initialisation energy spreads evenly; averaging (low-pass) filters put it on the
    low eigenvalues, eigenvalue 0 being the constant filter.
    """
    shapes = conv_kernel_shapes(model)
    if kernel_shape is None:
        candidates = [s for s in shapes.values() if np.prod(s) > 1]
        if not candidates:
            raise ValueError("the model has no convolution with more than one pixel per filter")
        kernel_shape = max(set(candidates), key=candidates.count)
    kernel_shape = tuple(kernel_shape)
    layers = [name for name, shape in shapes.items() if shape == kernel_shape]
    values, vectors = grid_laplacian_modes(kernel_shape)
    modules = dict(model.named_modules())
    energy = []
    for name in layers:
        slices = modules[name].weight.detach().double().cpu().reshape(-1, vectors.shape[0]).numpy()
        energy.append(((slices @ vectors) ** 2).mean(axis=0))
    energy = np.asarray(energy).reshape(len(layers), len(values))
    ds = xr.Dataset(
        {
            "energy": (("layer", "mode"), energy),
            "fraction": (("layer", "mode"), energy / energy.sum(axis=1, keepdims=True)),
        },
        coords={
            "layer": layers,
            "depth": ("layer", np.arange(1, len(layers) + 1)),
            "mode": np.arange(len(values)),
            "eigenvalue": ("mode", values),
        },
        attrs={"kernel_shape": "x".join(map(str, kernel_shape))},
    )
    ds.energy.attrs = {"long_name": "mean squared projection of the filters", "units": "weight^2"}
    ds.fraction.attrs = {"long_name": "share of the filter energy", "units": "1"}
    ds.eigenvalue.attrs = {"long_name": "eigenvalue of the grid Laplacian", "units": "1"}
    return ds


def checkpoint_spectra(checkpoints: Mapping[tuple[int, str], str | os.PathLike]) -> xr.Dataset:
    """:func:`laplacian_spectrum` of saved checkpoints, ``(seed, checkpoint) -> file``, stacked
    into ``seed x checkpoint x layer x mode``, with each checkpoint's ``test_error``. Nets
    without spatial filters give no layers."""
    from diffsens.train import load_checkpoint

    spectra = {}
    for (seed, name), path in checkpoints.items():
        model, checkpoint = load_checkpoint(path)
        try:
            spectrum = laplacian_spectrum(model)
        except ValueError:  # no convolution with more than one pixel: nothing to project
            spectrum = laplacian_spectrum_empty()
        spectra[seed, name] = spectrum.assign(test_error=checkpoint["test_error"])
    seeds = sorted({seed for seed, _ in spectra})
    names = list(dict.fromkeys(name for _, name in spectra))
    by_seed = [
        xr.concat([spectra[seed, n] for n in names], pd.Index(names, name="checkpoint"))
        for seed in seeds
    ]
    stacked = xr.concat(by_seed, pd.Index(seeds, name="seed"), combine_attrs="override")
    stacked.test_error.attrs = {"long_name": "test error of the checkpoint", "units": "1"}
    return stacked


def laplacian_spectrum_empty() -> xr.Dataset:
    """A spectrum with no layers, for nets without spatial filters (fully connected)."""
    empty = np.zeros((0, 1))
    return xr.Dataset(
        {"energy": (("layer", "mode"), empty), "fraction": (("layer", "mode"), empty)},
        coords={
            "layer": np.array([], dtype=str),
            "depth": ("layer", np.array([], dtype=int)),
            "mode": [0],
            "eigenvalue": ("mode", [0.0]),
        },
        attrs={"kernel_shape": "none"},
    )
