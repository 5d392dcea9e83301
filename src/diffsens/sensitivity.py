"""Layer-wise sensitivities to diffeomorphisms (D), to matched noise (G) and their ratio R = D / G.

For a representation f and probes x_1..x_P, with one deformation tau_i and one noise draw eta_i of
the same norm per probe (docs/science.md §2):

    num_D = (1/P) sum_i ||f(tau_i x_i) - f(x_i)||^2
    num_G = (1/P) sum_i ||f(x_i + eta_i) - f(x_i)||^2
    den   = (1/P^2) sum_{i,j} ||f(x_i) - f(x_j)||^2 = 2 (mean_i ||f_i||^2 - ||mean_i f_i||^2)
    D = num_D / den,  G = num_G / den,  R = D / G.

The probe set streams through the model in batches, so memory does not grow with P; the
denominator uses the O(P) identity on the right, accumulated in float64 about a shift (the first
batch's mean) so that a large common offset of the features cannot cancel its digits away.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from diffsens._checks import (
    check_choice,
    check_cut,
    check_finite,
    check_int,
    check_positive,
    check_tensor,
)
from diffsens.diffeo import (
    INTERPOLATIONS,
    _warp,
    displacement_field,
    sample_modes,
    temperature_for_displacement,
    temperature_range,
    typical_displacement,
)
from diffsens.perturb import NOISES, move_pixels, noisy, random_directions, shift
from diffsens.probes import OUTPUT, Probe, evaluating, layer_labels

__all__ = ["DEFORMATIONS", "STATISTICS", "measure"]

logger = logging.getLogger(__name__)

DEFORMATIONS = ("diffeo", "pixel_move", "shift")
"""Smooth diffeomorphisms, and two discrete moves that have no temperature."""
STATISTICS = ("mean", "median")


def measure(
    model: nn.Module,
    images: torch.Tensor,
    *,
    temperatures: Sequence[float] | None = None,
    deltas: Sequence[float] | None = None,
    cut: float = 3,
    interp: str = "bilinear",
    deformation: str = "diffeo",
    block: int | None = None,
    noise: str = "gaussian",
    layers: Sequence[str] | Mapping[str, int] | None = None,
    statistic: str = "mean",
    channel_mean: bool = False,
    seed: int = 0,
    batch_size: int = 128,
) -> xr.Dataset:
    """Measure D, G and R of every probed layer of ``model`` on the probe set ``images``.

    Parameters
    ----------
    model:
        Any ``nn.Module``; it is run in eval mode, on the device of its parameters.
    images:
        Probes ``(P, C, n, n)`` (or ``(P, C, L)`` with a discrete deformation), on any device.
    temperatures, deltas:
        Diffeo temperatures, finite and > 0, one measurement each (``diffsens.diffeo.
        temperature_range`` gives the useful span; those above its ``T_max``, where deformations
        fold the image, are measured with a logged warning); or, instead, typical displacements
        ``deltas`` in pixels, each measured at its temperature (``diffsens.diffeo.
        temperature_for_displacement``). Neither applies to the discrete moves, whose
        temperature coordinate is NaN.
    cut, interp:
        Diffeo cut-off and interpolation (``"bilinear"``, ``"nearest"``, ``"gaussian"``).
    deformation:
        ``"diffeo"`` (smooth, docs/science.md §3), ``"pixel_move"`` (each active pixel moves
        one step: the scale-detection tasks, 1-D or 2-D; ``block`` undoes 1-D moves that would
        change block) or ``"shift"`` (the whole input moves one pixel along its last axis,
        circularly: the constant-filter theory).
    noise:
        How the matched noise meets the input (:data:`diffsens.perturb.NOISES`): ``"gaussian"``
        ``x + eta``, ``"rectified"`` ``x + eta`` with a non-negative direction,
        ``"rectified_input"`` ``relu(x + eta)``.
    layers:
        ``None`` probes the output only, named ``"output"``. Otherwise module paths (and/or
        ``"output"``) in depth order, or a mapping from name to depth index.
    statistic:
        ``"mean"`` over probes (default) or ``"median"``: per-feature median of the squared change
        over probes, summed over features (the 2021 convention; it keeps every probe's squared
        changes of every layer in memory). The denominator is the mean over pairs in both.
    channel_mean:
        Average every probed activation over its channels before D, G, R (one signal per layer:
        the representation of the paper's 1-D figure); outputs without a spatial axis (logits)
        stay as they are.
    seed:
        Seeds every random draw. Each probe gets one deformation shape and one noise direction,
        shared by all temperatures (only their sizes change), so curves over T are smooth and the
        result does not depend on ``batch_size``.

    Returns
    -------
    xarray.Dataset with ``D``, ``G``, ``R``, ``num_D``, ``num_G`` over ``(layer, temperature)`` and
    ``den`` over ``layer``; coordinates ``layer`` (module paths), ``label`` (readable names:
    :func:`diffsens.probes.layer_labels`), ``depth``, ``temperature``, ``delta``. With
    ``"diffeo"`` the attributes ``T_max`` and ``above_T_max`` (the temperatures above it) record
    how far the measurement went into folding deformations.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("deformation", deformation, DEFORMATIONS)
    check_choice("noise", noise, NOISES)
    check_choice("statistic", statistic, STATISTICS)
    check_choice("interp", interp, INTERPOLATIONS)
    check_cut(cut)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    _check_images(images, deformation, block)
    if deltas is not None:
        if temperatures is not None:
            raise ValueError("give temperatures or deltas (displacements in pixels), not both")
        deltas = check_positive("deltas", np.asarray(deltas, dtype=np.float64))
        temperatures = temperature_for_displacement(deltas, cut, images.shape[-1])
    temperatures, T_attrs = _resolve_temperatures(images, deformation, temperatures, cut)
    names, depths = _resolve_layers(layers)
    probe = Probe(model, names, channel_mean=channel_mean)  # refuses unknown, repeated layers
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else images.dtype
    n_probes = len(images)

    draws = _Draws(
        images.to(dtype=dtype),
        deformation=deformation,
        temperatures=temperatures,
        cut=cut,
        interp=interp,
        block=block,
        noise=noise,
        generator=torch.Generator().manual_seed(seed),
    )
    stats = {name: _LayerStats(len(temperatures), n_probes, statistic) for name in names}
    with torch.inference_mode(), evaluating(model), probe:
        for start in range(0, n_probes, batch_size):
            batch = slice(start, min(start + batch_size, n_probes))
            x = images[batch].to(device=device, dtype=dtype)
            clean = probe(x)
            for name in names:
                stats[name].add_clean(clean[name])
            for t in range(len(temperatures)):
                deformed = draws.deformed(x, batch, t)
                noised = noisy(x, deformed, noise, directions=draws.directions[batch])
                record = functools.partial(_add_perturbed, stats, t, batch, clean)
                probe(torch.cat([deformed, noised]), reduce=record)

    settings = {
        "deformation": deformation,
        "cut": cut,
        "interp": interp,
        "block": block if block is not None else "none",
        "noise": noise,
        "statistic": statistic,
        "seed": seed,
        "n_probes": n_probes,
        "batch_size": batch_size,
        "device": str(device),
        **T_attrs,
    }
    ds = _dataset(names, depths, temperatures, stats, images.shape[-1], cut, deformation, settings)
    return ds.assign_coords(label=("layer", layer_labels(model, names)))


def _check_images(images, deformation: str, block) -> None:
    """Probes the deformation applies to, at least 2 (the denominator compares pairs), finite."""
    check_tensor("images", images, "P C ...")
    if deformation == "diffeo" and (
        images.ndim != 4 or images.shape[-1] != images.shape[-2] or images.shape[-1] < 2
    ):
        raise ValueError(
            f"deformation='diffeo' needs square images (P, C, n, n) with n >= 2, got "
            f"{tuple(images.shape)}; use deformation='pixel_move' for 1-D inputs"
        )
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape (P, C, L) or (P, C, H, W), got {tuple(images.shape)}"
        )
    if block is not None:
        check_int("block", block, 1)
        if deformation != "pixel_move" or images.ndim != 3:
            raise ValueError(
                f"block only applies to deformation='pixel_move' on 1-D inputs (P, C, L), got "
                f"deformation={deformation!r} and images of shape {tuple(images.shape)}"
            )
    if len(images) < 2:
        raise ValueError(
            f"images must hold at least 2 probes for the denominator, got {len(images)}"
        )
    check_finite("probes", images)
    if bool((images == images[:1]).all()):
        raise ValueError("all probes are the same image: the denominator (their spread) is 0")


def _resolve_layers(layers) -> tuple[list[str], list[int]]:
    """Names and depths; names must be strings (distinct and known: :class:`Probe` checks)."""
    if layers is None:
        return [OUTPUT], [1]
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of names, not a string; did you mean [{layers!r}]?")
    if isinstance(layers, Mapping):
        names = list(layers)
        depths = [check_int(f"depth of layer {name!r}", layers[name], 1) for name in names]
    elif isinstance(layers, Sequence):
        names = list(layers)
        depths = list(range(1, len(names) + 1))
    else:
        raise TypeError(
            f"layers must be a list of names or a mapping name -> depth, got {layers!r}"
        )
    if not names:
        raise ValueError("layers must name at least one layer (or be None for the output)")
    not_str = [name for name in names if not isinstance(name, str)]
    if not_str:
        raise TypeError(f"layer names must be strings, got {not_str}")
    return names, depths


def _resolve_temperatures(images, deformation, temperatures, cut) -> tuple[list[float], dict]:
    """The temperatures as floats, and the attributes recording those above ``T_max`` (with a
    logged warning): such deformations fold the image, yet measuring them is allowed."""
    if deformation != "diffeo":
        if temperatures is not None:
            raise ValueError(
                f"temperatures do not apply to deformation={deformation!r}; leave them None"
            )
        return [math.nan], {}
    values = None
    if temperatures is not None:
        if not isinstance(temperatures, torch.Tensor):
            temperatures = np.asarray(temperatures)  # a list: checked as one array
        values = check_positive("temperatures", temperatures)
    if values is None or values.size == 0:
        raise ValueError(
            "temperatures are required for deformation='diffeo', e.g. "
            "diffsens.diffeo.temperature_range(n, cut) gives (T_min, T_max)"
        )
    if values.ndim != 1:
        raise ValueError(f"temperatures must be a 1-D list, got {values.tolist()}")
    n = images.shape[-1]
    T_max = temperature_range(n, cut)[1]
    above = [T for T in values.tolist() if T > T_max]
    if above:
        logger.warning(
            "temperatures %s (displacements %s px) are above T_max = %.6g (%.3g px; n = %d, "
            "cut = %s), where the deformations start to fold the images onto themselves",
            above,
            [round(float(typical_displacement(T, cut, n)), 3) for T in above],
            T_max,
            typical_displacement(T_max, cut, n),
            n,
            cut,
        )
    return values.tolist(), {"T_max": T_max, "above_T_max": above}


class _Draws:
    """Every random draw of one measurement, made up front in a fixed order from one generator."""

    def __init__(self, images, *, deformation, temperatures, cut, interp, block, noise, generator):
        self.temperatures = temperatures
        self.interp = interp
        if deformation == "diffeo":
            self.modes = sample_modes(len(images), cut, generator=generator, dtype=images.dtype)
            self.moved = None
        else:
            self.modes = None
            if deformation == "shift":
                self.moved = shift(images)
            else:
                self.moved = move_pixels(images, block=block, generator=generator)
        self.directions = random_directions(
            images.shape, rectify=noise == "rectified", generator=generator, dtype=images.dtype
        )

    def deformed(self, x: torch.Tensor, batch: slice, t: int) -> torch.Tensor:
        if self.moved is not None:
            return self.moved[batch].to(x.device)
        modes = self.modes[batch].to(x.device)
        field = displacement_field(modes, x.shape[-1], self.temperatures[t])
        return _warp(x, field, self.interp)  # finite by construction: no check, no device sync


def _add_perturbed(stats, t, batch, clean, name, features) -> None:
    stats[name].add_perturbed(t, batch, clean[name], features)


def _squared_norms(rows: torch.Tensor) -> torch.Tensor:
    """``||row||^2`` along the last axis, without materialising the squares (a fused reduction)."""
    return torch.linalg.vector_norm(rows, dim=-1).square()


class _LayerStats:
    """Running float64 sums of one layer: the O(P) denominator, both numerators per T."""

    def __init__(self, n_temperatures: int, n_probes: int, statistic: str):
        self.n_temperatures = n_temperatures
        self.n_probes = n_probes
        self.statistic = statistic
        self.shift: torch.Tensor | None = None
        self.sum: torch.Tensor | float = 0.0
        self.sum_sq: torch.Tensor | float = 0.0
        self.count = 0
        self.num: torch.Tensor | None = None  # (2, T): D then G
        self.squares: torch.Tensor | None = None  # median only: (2, T, P, features)

    def add_clean(self, features: torch.Tensor) -> None:
        if self.shift is None:
            self.shift = features.mean(0)
        centred = features - self.shift
        self.sum = self.sum + centred.sum(0, dtype=torch.float64)
        self.sum_sq = self.sum_sq + _squared_norms(centred).sum(dtype=torch.float64)
        self.count += len(features)

    def add_perturbed(self, t: int, batch: slice, clean: torch.Tensor, changed: torch.Tensor):
        """``changed`` holds the deformed then the noisy versions of the ``clean`` batch."""
        change = changed.view(2, *clean.shape) - clean  # (2, B, F): D then G
        if self.statistic == "mean":
            if self.num is None:
                self.num = torch.zeros(
                    2, self.n_temperatures, dtype=torch.float64, device=clean.device
                )
            self.num[:, t] += _squared_norms(change).sum(-1, dtype=torch.float64)
        else:
            if self.squares is None:
                shape = (2, self.n_temperatures, self.n_probes, clean.shape[1])
                self.squares = torch.empty(shape, dtype=clean.dtype)  # the model's precision
            self.squares[:, t, batch] = change.square_().cpu()

    def denominator(self) -> float:
        mean = self.sum / self.count
        return float(2 * (self.sum_sq / self.count - mean.square().sum()))

    def numerators(self) -> np.ndarray:
        """``(2, T)`` array: num_D and num_G at each temperature."""
        if self.statistic == "mean":
            return (self.num / self.n_probes).cpu().numpy()
        return self.squares.median(dim=2).values.double().sum(-1).numpy()


_ATTRS = {
    "D": {"long_name": "relative sensitivity to diffeomorphisms D", "units": "1"},
    "G": {"long_name": "relative sensitivity to matched noise G", "units": "1"},
    "R": {"long_name": "relative stability R = D / G", "units": "1"},
    "num_D": {"long_name": "mean squared change under diffeomorphisms", "units": "feature^2"},
    "num_G": {"long_name": "mean squared change under matched noise", "units": "feature^2"},
    "den": {
        "long_name": "mean squared distance between probe representations",
        "units": "feature^2",
    },
    "temperature": {"long_name": "diffeomorphism temperature T", "units": "1"},
    "delta": {"long_name": "typical displacement delta", "units": "pixel"},
    "depth": {"long_name": "depth index k of the probed layer", "units": "1"},
}


def _dataset(names, depths, temperatures, stats, n, cut, deformation, settings) -> xr.Dataset:
    numerators = np.stack([stats[name].numerators() for name in names], axis=1)  # (2, L, T)
    den = np.array([stats[name].denominator() for name in names])
    collapsed = [name for name, d in zip(names, den, strict=True) if not d > 0]
    if collapsed:
        logger.warning(
            "layers %s give every probe the same representation: D, G, R are undefined there (NaN)",
            collapsed,
        )
    if deformation == "diffeo":
        delta = [typical_displacement(T, cut, n) for T in temperatures]
    else:
        delta = [1.0]  # one pixel step
    dims = ("layer", "temperature")
    ds = xr.Dataset(
        {
            "num_D": (dims, numerators[0]),
            "num_G": (dims, numerators[1]),
            "den": ("layer", den),
        },
        coords={
            "layer": names,
            "depth": ("layer", np.asarray(depths, dtype=np.int64)),
            "temperature": np.asarray(temperatures, dtype=np.float64),
            "delta": ("temperature", np.asarray(delta, dtype=np.float64)),
        },
        attrs=settings,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ds["D"] = ds.num_D / ds.den
        ds["G"] = ds.num_G / ds.den
        ds["R"] = ds.D / ds.G
    for name, attrs in _ATTRS.items():
        ds[name].attrs.update(attrs)
    return ds[["D", "G", "R", "num_D", "num_G", "den"]]
