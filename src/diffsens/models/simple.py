"""Plain convolutional nets for the stride/pooling study and the constant-filter theory model.

``simple_cnn`` (docs/science.md §5): depth L of [conv, ReLU, optional pool], global average
pooling, a linear readout, in 1-D or 2-D; strides and pooling set how fast the spatial size
shrinks with depth; PyTorch's parametrisation, or the authors' mean-field one.
``constant_filters`` (docs/science.md §8): one channel, every filter weight the same constant,
no readout; on one-hot inputs its activations can be computed by hand, which is what makes it
the theory's model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from diffsens._checks import check_choice
from diffsens.models._layers import (
    AVG_POOL,
    CONV,
    GLOBAL_AVG_POOL,
    MAX_POOL,
    Network,
    check_dim,
    check_int,
    check_reaches,
    conv_size,
    require_classes,
)
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = [
    "PARAMETRISATIONS",
    "POOLINGS",
    "ConstantConv",
    "ConstantFilters",
    "MeanFieldConv1d",
    "MeanFieldConv2d",
    "MeanFieldReadout",
    "ScaledReLU",
    "SimpleCNN",
    "Subsample",
    "constant_filters",
    "simple_cnn",
]

POOLINGS = ("none", "max", "avg", "subsampling")
PARAMETRISATIONS = ("standard", "mean_field")


class _MeanFieldConv:
    """The authors' conv layer: weights and biases drawn N(0, 1), the weight divided by the
    square root of its fan-in (input channels x filter pixels) in the forward pass, so that
    every weight moves at the same rate under SGD whatever the width."""

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.normal_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight / math.sqrt(self.weight[0].numel()), self.bias)


class MeanFieldConv1d(_MeanFieldConv, nn.Conv1d):
    pass


class MeanFieldConv2d(_MeanFieldConv, nn.Conv2d):
    pass


MEAN_FIELD_CONV = {1: MeanFieldConv1d, 2: MeanFieldConv2d}


class ScaledReLU(nn.ReLU):
    """``gain * relu(x)``: the authors' ``sqrt(F) * ReLU`` block output."""

    def __init__(self, gain: float):
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * super().forward(x)

    def extra_repr(self) -> str:
        return f"gain={self.gain:.4g}"


class MeanFieldReadout(nn.Linear):
    """``b + x . w / width``, weights and bias N(0, 1): the authors' mean-field readout, whose
    output at initialisation shrinks as 1/sqrt(width)."""

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        nn.init.normal_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias + x @ self.weight.T / self.in_features


class Subsample(nn.Module):
    """Keep every ``size``-th position along each spatial axis, starting at the first.

    A trailing incomplete window is dropped, as max and average pooling drop it, so every pooling
    kind maps ``n`` to ``n // size`` positions and they differ only in what they keep.
    """

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.dim = dim
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.size
        keep = tuple(slice(0, (n // s) * s, s) for n in x.shape[-self.dim :])
        return x[(..., *keep)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"


def _pool(kind: str, dim: int, size: int) -> nn.Module:
    if kind == "max":
        return MAX_POOL[dim](size)
    if kind == "avg":
        return AVG_POOL[dim](size)
    return Subsample(dim, size)


def _per_layer(name: str, value: int | Sequence[int], depth: int, minimum: int) -> list[int]:
    """One int per layer from an int (shared) or a list of ``depth`` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [check_int(name, value, minimum)] * depth
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(
            f"option {name} must be an int or a list of {depth} ints (one per layer), got {value!r}"
        )
    if len(value) != depth:
        raise ValueError(
            f"option {name} must list one value per layer: depth is {depth}, got {len(value)} "
            f"values {list(value)}"
        )
    return [check_int(f"{name}[{k}]", v, minimum) for k, v in enumerate(value)]


class SimpleCNN(Network):
    """``conv{k}, relu{k}[, pool{k}]`` for k = 1..L, then ``gap, flatten, readout``.

    Probe points: ``relu{k}`` (and ``pool{k}`` when pooling) in depth order, then ``output``.
    ``sizes`` holds the spatial size after each named layer, input first, as computed up front.
    """

    def __init__(
        self,
        *,
        dim: int,
        in_channels: int,
        num_classes: int,
        input_size: int,
        width: int,
        filter_size: int,
        strides: list[int],
        paddings: list[int],
        pooling: str,
        pool_size: int,
        bias: bool,
        parametrisation: str,
    ):
        mean_field = parametrisation == "mean_field"
        conv = (MEAN_FIELD_CONV if mean_field else CONV)[dim]
        layers: dict[str, nn.Module] = {}
        probes = []
        sizes = {"input": input_size}
        n, channels = input_size, in_channels
        for k, (stride, padding) in enumerate(zip(strides, paddings, strict=True), start=1):
            n = check_reaches(
                "simple_cnn", f"conv{k}", n, conv_size(n, filter_size, stride, padding)
            )
            layers[f"conv{k}"] = conv(
                channels, width, filter_size, stride=stride, padding=padding, bias=bias
            )
            layers[f"relu{k}"] = ScaledReLU(math.sqrt(filter_size)) if mean_field else nn.ReLU()
            sizes[f"conv{k}"] = sizes[f"relu{k}"] = n
            probes.append(f"relu{k}")
            if pooling != "none":
                n = check_reaches("simple_cnn", f"pool{k}", n, n // pool_size)
                layers[f"pool{k}"] = _pool(pooling, dim, pool_size)
                sizes[f"pool{k}"] = n
                probes.append(f"pool{k}")
            channels = width
        layers["gap"] = GLOBAL_AVG_POOL[dim](1)
        layers["flatten"] = nn.Flatten()
        layers["readout"] = (MeanFieldReadout if mean_field else nn.Linear)(channels, num_classes)
        super().__init__(layers, [*probes, OUTPUT])
        self.sizes = sizes


@register_model("simple_cnn")
def simple_cnn(
    *,
    in_channels: int,
    num_classes: int,
    input_size: int,
    dim: int = 2,
    depth: int = 4,
    width: int = 64,
    filter_size: int = 3,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | None = None,
    pooling: str = "none",
    pool_size: int = 2,
    bias: bool = True,
    parametrisation: str = "standard",
) -> SimpleCNN:
    """Depth ``depth`` of [conv (``width`` channels, ``filter_size``, ``stride``), ReLU, pool].

    ``stride`` and ``padding`` are one int for all layers or a list with one per layer; padding
    defaults to ``(filter_size - 1) // 2``. ``pooling`` ("none", "max", "avg", "subsampling")
    follows every layer with window and step ``pool_size``. The paper's 1-D net is
    ``dim=1, depth=7, filter_size=2, stride=2, width=1000`` on length 128 (128 -> 1).

    ``parametrisation``: "standard" (PyTorch's layers and initialisation) or "mean_field" (the
    authors' 1-D nets, docs/science.md §5): weights and biases N(0, 1), each conv weight divided
    by sqrt(fan-in) in the forward pass, blocks ``sqrt(filter_size) * relu``, and a mean-field
    readout ``b + x . w / width``.
    """
    dim = check_dim(dim)
    depth = check_int("depth", depth)
    filter_size = check_int("filter_size", filter_size)
    check_choice("pooling", pooling, POOLINGS)
    check_choice("parametrisation", parametrisation, PARAMETRISATIONS)
    if not isinstance(bias, bool):
        raise ValueError(f"option bias must be True or False, got {bias!r}")
    if padding is None:
        padding = (filter_size - 1) // 2
    return SimpleCNN(
        dim=dim,
        in_channels=in_channels,
        num_classes=require_classes(num_classes),
        input_size=input_size,
        width=check_int("width", width),
        filter_size=filter_size,
        strides=_per_layer("stride", stride, depth, minimum=1),
        paddings=_per_layer("padding", padding, depth, minimum=0),
        pooling=pooling,
        pool_size=check_int("pool_size", pool_size),
        bias=bias,
        parametrisation=parametrisation,
    )


class ConstantConv(nn.Module):
    """A one-channel convolution whose every weight is ``value``, without bias: ``value`` times
    the sum over each window, computed as average pooling (several times faster than a
    convolution in float64, and the weight is exactly ``value`` in any precision).

    ``padding`` zeros on both sides of every axis, or, ``periodic``, circular "same" padding
    (stride 1: the input is a ring or torus and keeps its size).
    """

    def __init__(
        self, dim: int, filter_size: int, stride: int, padding: int, value: float, periodic: bool
    ):
        super().__init__()
        self.dim, self.filter_size, self.stride, self.value = dim, filter_size, stride, value
        left = (filter_size - 1) // 2 if periodic else padding
        right = filter_size - 1 - left if periodic else padding
        self.pads = (left, right) * dim
        self.mode = "circular" if periodic else "constant"
        self.pool = AVG_POOL[dim](filter_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = nn.functional.pad(x, self.pads, mode=self.mode)
        return self.pool(x) * (self.value * self.filter_size**self.dim)

    def extra_repr(self) -> str:
        pads = f"pads={self.pads[:2]}, {self.mode}"
        return f"dim={self.dim}, filter_size={self.filter_size}, stride={self.stride}, {pads}"


class ConstantFilters(Network):
    """``conv{k}, relu{k}`` for k = 1..L on one channel, each conv a :class:`ConstantConv`.

    The output is the last ReLU, so the probe points are ``relu1..relu{L}`` with no ``output``.
    The net has no parameters: nothing to train.
    """

    def __init__(
        self,
        *,
        dim: int,
        input_size: int,
        depth: int,
        filter_size: int,
        stride: int,
        padding: int,
        value: float,
        periodic: bool,
    ):
        layers: dict[str, nn.Module] = {}
        n = input_size
        for k in range(1, depth + 1):
            if not periodic:  # on a ring every layer keeps the size, no edge anywhere
                n = check_reaches(
                    "constant_filters", f"conv{k}", n, conv_size(n, filter_size, stride, padding)
                )
            layers[f"conv{k}"] = ConstantConv(dim, filter_size, stride, padding, value, periodic)
            layers[f"relu{k}"] = nn.ReLU(inplace=False)
        super().__init__(layers, [f"relu{k}" for k in range(1, depth + 1)])
        self.value = value


@register_model("constant_filters")
def constant_filters(
    *,
    in_channels: int = 1,
    num_classes: int | None = None,
    input_size: int,
    dim: int = 1,
    filter_size: int = 2,
    stride: int = 1,
    depth: int = 4,
    padding: int = 0,
    value: float | None = None,
    periodic: bool = False,
) -> ConstantFilters:
    """The theory network (docs/science.md §8): each layer sums F-windows with stride s, times
    ``value``.

    ``value`` defaults to ``1 / filter_size**dim`` (each layer averages its window). ``num_classes``
    is ignored: there is no readout. Inputs have one channel. ``periodic`` (stride 1 only) wraps
    the input into a ring or torus with circular "same" padding, so no layer shrinks the input
    and no activation meets an edge: the infinite-lattice setting of the theory.
    """
    if periodic and (stride != 1 or padding != 0):
        raise ValueError(
            f"periodic constant filters need stride 1 and no explicit padding, got stride "
            f"{stride!r} and padding {padding!r}"
        )
    if in_channels != 1:
        raise ValueError(
            f"constant_filters works on one channel: in_channels must be 1, got {in_channels!r}"
        )
    dim = check_dim(dim)
    filter_size = check_int("filter_size", filter_size)
    if value is None:
        value = 1 / filter_size**dim
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"option value must be a finite number, got {value!r}")
    return ConstantFilters(
        dim=dim,
        input_size=input_size,
        depth=check_int("depth", depth),
        filter_size=filter_size,
        stride=check_int("stride", stride),
        padding=check_int("padding", padding, minimum=0),
        value=float(value),
        periodic=bool(periodic),
    )
