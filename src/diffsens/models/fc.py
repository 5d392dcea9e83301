"""Fully connected networks FC-L2/L4/L6 (docs/science.md §5): no notion of locality at all."""

from __future__ import annotations

from torch import nn

from diffsens.models._layers import Network, check_dim, check_int, require_classes
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = ["FullyConnected", "fc2", "fc4", "fc6"]


class FullyConnected(Network):
    """``flatten``, then ``fc1, relu1, ..., fc{L-1}, relu{L-1}, fc{L}``: L linear layers in all.

    Probe points: every ``relu{k}``, then ``"output"``.
    """

    def __init__(self, in_features: int, num_classes: int, n_layers: int, width: int):
        layers: dict[str, nn.Module] = {"flatten": nn.Flatten()}
        probes = []
        features = in_features
        for k in range(1, n_layers):
            layers[f"fc{k}"] = nn.Linear(features, width)
            layers[f"relu{k}"] = nn.ReLU(inplace=False)
            probes.append(f"relu{k}")
            features = width
        layers[f"fc{n_layers}"] = nn.Linear(features, num_classes)
        super().__init__(layers, [*probes, OUTPUT])


def _fully_connected(n_layers, in_channels, num_classes, input_size, width, dim) -> Network:
    in_features = in_channels * input_size ** check_dim(dim)
    return FullyConnected(
        in_features, require_classes(num_classes), n_layers, check_int("width", width)
    )


@register_model("fc2")
def fc2(
    *, in_channels: int, num_classes: int, input_size: int, width: int = 64, dim: int = 2
) -> Network:
    """Two linear layers (one hidden layer of ``width``)."""
    return _fully_connected(2, in_channels, num_classes, input_size, width, dim)


@register_model("fc4")
def fc4(
    *, in_channels: int, num_classes: int, input_size: int, width: int = 64, dim: int = 2
) -> Network:
    """Four linear layers (three hidden layers of ``width``)."""
    return _fully_connected(4, in_channels, num_classes, input_size, width, dim)


@register_model("fc6")
def fc6(
    *, in_channels: int, num_classes: int, input_size: int, width: int = 64, dim: int = 2
) -> Network:
    """Six linear layers (five hidden layers of ``width``)."""
    return _fully_connected(6, in_channels, num_classes, input_size, width, dim)
