"""Pieces shared by the model families: option checks, output-size arithmetic, the base class."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from torch import nn

from diffsens.probes import OUTPUT

__all__ = [
    "AVG_POOL",
    "CONV",
    "GLOBAL_AVG_POOL",
    "MAX_POOL",
    "Network",
    "check_dim",
    "check_int",
    "check_reaches",
    "conv_size",
    "require_classes",
    "set_probe_points",
]

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
GLOBAL_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``; bools and floats are refused so config typos surface."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"option {name} must be an int >= {minimum}, got {value!r}")
    return value


def check_dim(dim: object) -> int:
    if dim not in (1, 2) or isinstance(dim, bool):
        raise ValueError(f"option dim must be 1 (signals) or 2 (images), got {dim!r}")
    return dim  # type: ignore[return-value]


def require_classes(num_classes: object) -> int:
    """Models with a readout need a number of outputs (``None`` is only for readout-free nets)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int (1 for the hinge loss), got {num_classes!r}"
        )
    return num_classes


def conv_size(n: int, kernel: int, stride: int = 1, padding: int = 0, ceil: bool = False) -> int:
    """Output length of a convolution or pooling along one axis (PyTorch's formula)."""
    span = n + 2 * padding - kernel
    if span < 0:
        return 0
    steps = math.ceil(span / stride) if ceil else span // stride
    if ceil and steps * stride >= n + padding:  # PyTorch drops a last window starting in padding
        steps -= 1
    return steps + 1


class Network(nn.Sequential):
    """A named sequence of layers that knows its probe points.

    Every model here is a ``Network``, so its layers are reachable by readable ``named_modules``
    paths (``"relu3"``, ``"layer2.1"``) and ``probe_points`` maps those probed, in depth order,
    to depth indices 1..K.
    """

    probe_points: dict[str, int]

    def __init__(self, layers: Mapping[str, nn.Module], probe_points: Sequence[str]):
        super().__init__(OrderedDict(layers))
        set_probe_points(self, probe_points)


def set_probe_points(model: nn.Module, names: Sequence[str]) -> None:
    """Attach ``probe_points`` (name -> 1-based depth), checking that every name exists."""
    modules = {name for name, _ in model.named_modules() if name}
    unknown = [name for name in names if name != OUTPUT and name not in modules]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"bad probe points {list(names)}: unknown or repeated {unknown}")
    model.probe_points = {name: depth for depth, name in enumerate(names, start=1)}


def check_reaches(model: str, layer: str, n_in: int, n_out: int) -> int:
    """Refuse a layer that leaves fewer than one position, naming it, before any tensor runs."""
    if n_out < 1:
        raise ValueError(
            f"{model}: layer {layer!r} shrinks its input of size {n_in} to {n_out} positions; "
            f"use a larger input_size or fewer/smaller strides, pools or filters"
        )
    return n_out
