"""ResNet18/34/50, CIFAR variant (docs/science.md §5): a 3x3 stride-1 stem and no stem max-pool.

Layer names follow torchvision (``conv1, bn1, relu, layer1..layer4, avgpool, fc``), with one
difference that matters for probing: every block owns its ReLUs (``relu1`` after the first
convolution, ..., the last one after the residual sum), so no activation module runs twice.
"""

from __future__ import annotations

import torch
from torch import nn

from diffsens.models._layers import Network, check_int, require_classes
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else a 1x1 projection with BatchNorm."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; ReLU after the first and after the residual sum."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)
        self.relu2 = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, each with BatchNorm and ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)
        self.relu3 = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet(Network):
    """Stem ``conv1, bn1, relu``; stages ``layer1..layer4`` (widths w, 2w, 4w, 8w with w = 64 in
    the standard nets, strides 1/2/2/2); ``avgpool`` (global), ``flatten``, ``fc``.

    Probe points: ``relu`` (the stem), every block (``"layer1.0"``, ...), ``avgpool``, ``output``.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        counts: list[int],
        in_channels: int,
        num_classes: int,
        width: int = 64,
    ):
        width = check_int("width", width)
        layers: dict[str, nn.Module] = {
            "conv1": nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            "bn1": nn.BatchNorm2d(width),
            "relu": nn.ReLU(inplace=False),
        }
        probes = ["relu"]
        in_planes = width
        widths = [width, 2 * width, 4 * width, 8 * width]
        for stage, (planes, count, stride) in enumerate(
            zip(widths, counts, [1, 2, 2, 2], strict=True), start=1
        ):
            blocks = []
            for i in range(count):
                blocks.append(block(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes * block.expansion
                probes.append(f"layer{stage}.{i}")
            layers[f"layer{stage}"] = nn.Sequential(*blocks)
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(in_planes, num_classes)
        super().__init__(layers, [*probes, "avgpool", OUTPUT])


@register_model("resnet18")
def resnet18(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> ResNet:
    """ResNet18: BasicBlocks [2, 2, 2, 2]. Works for any ``input_size`` (global pooling)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, require_classes(num_classes), width)


@register_model("resnet34")
def resnet34(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> ResNet:
    """ResNet34: BasicBlocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], in_channels, require_classes(num_classes), width)


@register_model("resnet50")
def resnet50(*, in_channels: int, num_classes: int, input_size: int, width: int = 64) -> ResNet:
    """ResNet50: Bottlenecks [3, 4, 6, 3] (expansion 4, so 2048 features before ``fc``)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, require_classes(num_classes), width)
