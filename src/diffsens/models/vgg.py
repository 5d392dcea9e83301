"""VGG11/13/16/19 with and without BatchNorm: 3x3 convolutions, max-pools, one linear.

The architectures of docs/science.md §5.

The classifier is a single ``Linear(512 * s * s, num_classes)``, as in the CIFAR variants used by
the diffeo-stability papers, not the three-layer ImageNet head.
"""

from __future__ import annotations

from torch import nn

from diffsens.models._layers import (
    Network,
    check_int,
    check_reaches,
    conv_size,
    require_classes,
)
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = [
    "CONFIGS",
    "VGG",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

M = "M"
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
    "vgg13": [64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M],
    "vgg16": [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
    "vgg19": [
        *(64, 64, M, 128, 128, M, 256, 256, 256, 256, M),
        *(512, 512, 512, 512, M, 512, 512, 512, 512, M),
    ],
}
"""Output channels of each 3x3 convolution, ``"M"`` for a 2x2 max-pool (the standard tables)."""


class VGG(Network):
    """``conv{k}`` (3x3, padding 1), optional ``bn{k}``, ``relu{k}``; ``pool{j}`` at each "M".

    Pools use ``ceil_mode=True`` so 28 x 28 inputs reach 1 x 1 after five pools, like 32 x 32.
    Probe points: every ``relu{k}`` and ``pool{j}`` in depth order, then ``output``.
    """

    def __init__(
        self,
        config: list[int | str],
        in_channels: int,
        num_classes: int,
        input_size: int,
        batch_norm: bool,
        name: str = "vgg",
    ):
        layers: dict[str, nn.Module] = {}
        probes = []
        channels, n, n_convs, n_pools = in_channels, input_size, 0, 0
        for entry in config:
            if entry == M:
                n_pools += 1
                pool = f"pool{n_pools}"
                n = check_reaches(name, pool, n, conv_size(n, 2, 2, ceil=True))
                layers[pool] = nn.MaxPool2d(2, ceil_mode=True)
                probes.append(pool)
                continue
            n_convs += 1
            layers[f"conv{n_convs}"] = nn.Conv2d(channels, entry, 3, padding=1)
            if batch_norm:
                layers[f"bn{n_convs}"] = nn.BatchNorm2d(entry)
            layers[f"relu{n_convs}"] = nn.ReLU(inplace=False)
            probes.append(f"relu{n_convs}")
            channels = entry
        layers["flatten"] = nn.Flatten()
        layers["classifier"] = nn.Linear(channels * n * n, num_classes)
        super().__init__(layers, [*probes, OUTPUT])


def _vgg(name: str, batch_norm: bool, in_channels, num_classes, input_size, width) -> VGG:
    """``width`` channels in the first convolution (64 in the standard nets), the others scaled
    alike: narrower VGGs for small data and CPUs."""
    scale = check_int("width", width) / 64
    config = [entry if entry == M else max(1, round(entry * scale)) for entry in CONFIGS[name]]
    full_name = f"{name}_bn" if batch_norm else name
    return VGG(config, in_channels, require_classes(num_classes), input_size, batch_norm, full_name)


@register_model("vgg11")
def vgg11(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG11 (configuration A), no BatchNorm."""
    return _vgg("vgg11", False, in_channels, num_classes, input_size, width)


@register_model("vgg13")
def vgg13(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG13 (configuration B), no BatchNorm."""
    return _vgg("vgg13", False, in_channels, num_classes, input_size, width)


@register_model("vgg16")
def vgg16(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG16 (configuration D), no BatchNorm."""
    return _vgg("vgg16", False, in_channels, num_classes, input_size, width)


@register_model("vgg19")
def vgg19(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG19 (configuration E), no BatchNorm."""
    return _vgg("vgg19", False, in_channels, num_classes, input_size, width)


@register_model("vgg11_bn")
def vgg11_bn(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG11 with BatchNorm after every convolution."""
    return _vgg("vgg11", True, in_channels, num_classes, input_size, width)


@register_model("vgg13_bn")
def vgg13_bn(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG13 with BatchNorm after every convolution."""
    return _vgg("vgg13", True, in_channels, num_classes, input_size, width)


@register_model("vgg16_bn")
def vgg16_bn(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG16 with BatchNorm after every convolution."""
    return _vgg("vgg16", True, in_channels, num_classes, input_size, width)


@register_model("vgg19_bn")
def vgg19_bn(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> VGG:
    """VGG19 with BatchNorm after every convolution."""
    return _vgg("vgg19", True, in_channels, num_classes, input_size, width)
