"""EfficientNet-B0, CIFAR variant (docs/science.md §5): a stride-1 stem and three stride-2
stages instead of five, so 32 x 32 inputs end on a 4 x 4 grid. No stochastic depth
(drop-connect) in the blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from diffsens.models._layers import Network, require_classes
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = ["B0_STAGES", "EfficientNet", "MBConv", "SqueezeExcitation", "efficientnet_b0"]

B0_STAGES: list[tuple[int, int, int, int, int]] = [
    (1, 16, 1, 3, 1),
    (6, 24, 2, 3, 1),
    (6, 40, 2, 5, 2),
    (6, 80, 3, 3, 2),
    (6, 112, 3, 5, 1),
    (6, 192, 4, 5, 2),
    (6, 320, 1, 3, 1),
]
"""(expansion, output channels, repeats, kernel, stride of the stage's first block)."""


class SqueezeExcitation(nn.Module):
    """Rescale each channel by a gate computed from the globally pooled channels."""

    def __init__(self, channels: int, squeezed: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU(inplace=False)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand, BN, SiLU], depthwise kxk, BN, SiLU, squeeze-excitation,
    1x1 project, BN; plus the input when the shape is kept (stride 1, same channels).
    """

    def __init__(
        self, in_channels: int, out_channels: int, expansion: int, kernel: int, stride: int
    ):
        super().__init__()
        hidden = in_channels * expansion
        self.has_expansion = expansion != 1
        if self.has_expansion:
            self.expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(hidden)
            self.expand_act = nn.SiLU(inplace=False)
        self.dw_conv = nn.Conv2d(
            hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False
        )
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.dw_act = nn.SiLU(inplace=False)
        self.se = SqueezeExcitation(hidden, max(1, in_channels // 4))
        self.project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = self.expand_act(self.expand_bn(self.expand_conv(out)))
        out = self.dw_act(self.dw_bn(self.dw_conv(out)))
        out = self.project_bn(self.project_conv(self.se(out)))
        return out + x if self.residual else out


class EfficientNet(Network):
    """``conv_stem, bn_stem, act_stem``; ``blocks`` (16 MBConvs for B0); ``conv_head, bn_head,
    act_head`` (1x1 to 1280); ``avgpool, flatten, dropout, classifier``.

    Probe points: ``act_stem``, every block (``"blocks.0"`` ... ``"blocks.15"``), ``act_head``,
    ``output``.
    """

    def __init__(
        self,
        stages: list[tuple[int, int, int, int, int]],
        in_channels: int,
        num_classes: int,
        dropout: float,
    ):
        layers: dict[str, nn.Module] = {
            "conv_stem": nn.Conv2d(in_channels, 32, 3, padding=1, bias=False),
            "bn_stem": nn.BatchNorm2d(32),
            "act_stem": nn.SiLU(inplace=False),
        }
        blocks = []
        channels = 32
        for expansion, out_channels, repeats, kernel, stride in stages:
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                blocks.append(MBConv(channels, out_channels, expansion, kernel, block_stride))
                channels = out_channels
        layers.update(
            {
                "blocks": nn.Sequential(*blocks),
                "conv_head": nn.Conv2d(channels, 1280, 1, bias=False),
                "bn_head": nn.BatchNorm2d(1280),
                "act_head": nn.SiLU(inplace=False),
                "avgpool": nn.AdaptiveAvgPool2d(1),
                "flatten": nn.Flatten(),
                "dropout": nn.Dropout(dropout),
                "classifier": nn.Linear(1280, num_classes),
            }
        )
        probes = ["act_stem", *(f"blocks.{i}" for i in range(len(blocks))), "act_head", OUTPUT]
        super().__init__(layers, probes)


@register_model("efficientnet_b0")
def efficientnet_b0(
    *, in_channels: int, num_classes: int, input_size: int, dropout: float = 0.2
) -> EfficientNet:
    """EfficientNet-B0 for small images; ``dropout`` before the classifier."""
    if not 0 <= dropout < 1:
        raise ValueError(f"option dropout must be in [0, 1), got {dropout!r}")
    return EfficientNet(B0_STAGES, in_channels, require_classes(num_classes), dropout)
