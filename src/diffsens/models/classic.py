"""LeNet and the CIFAR variant of AlexNet (docs/science.md §5): classic pooled conv nets."""

from __future__ import annotations

from torch import nn

from diffsens.models._layers import Network, check_reaches, conv_size, require_classes
from diffsens.models._registry import register_model
from diffsens.probes import OUTPUT

__all__ = ["AlexNet", "LeNet", "alexnet", "lenet"]


class LeNet(Network):
    """conv5-6, ReLU, max-pool 2, conv5-16, ReLU, max-pool 2, fc 120, ReLU, fc 84, ReLU, linear.

    Unpadded convolutions, as in LeNet-5; the first linear layer's width follows the input size
    (16 * 5 * 5 for 32 x 32, 16 * 4 * 4 for 28 x 28). Probe points: ``relu1, pool1, relu2, pool2,
    relu3, relu4, output``.
    """

    def __init__(self, in_channels: int, num_classes: int, input_size: int):
        n = input_size
        shrinking = [("conv1", 5, 1), ("pool1", 2, 2), ("conv2", 5, 1), ("pool2", 2, 2)]
        for layer, kernel, stride in shrinking:
            n = check_reaches("lenet", layer, n, conv_size(n, kernel, stride))
        layers = {
            "conv1": nn.Conv2d(in_channels, 6, 5),
            "relu1": nn.ReLU(inplace=False),
            "pool1": nn.MaxPool2d(2),
            "conv2": nn.Conv2d(6, 16, 5),
            "relu2": nn.ReLU(inplace=False),
            "pool2": nn.MaxPool2d(2),
            "flatten": nn.Flatten(),
            "fc1": nn.Linear(16 * n * n, 120),
            "relu3": nn.ReLU(inplace=False),
            "fc2": nn.Linear(120, 84),
            "relu4": nn.ReLU(inplace=False),
            "fc3": nn.Linear(84, num_classes),
        }
        probes = ["relu1", "pool1", "relu2", "pool2", "relu3", "relu4", OUTPUT]
        super().__init__(layers, probes)


class AlexNet(Network):
    """AlexNet for small images: five 3x3 convolutions, three max-pools, three linear layers.

    The pools use ``ceil_mode=True`` so that 28 x 28 inputs end on the same 2 x 2 grid as 32 x 32
    ones (the classifier then has 256 * 2 * 2 inputs for both). Probe points: every ReLU and every
    pool in depth order, then ``output``.
    """

    def __init__(self, in_channels: int, num_classes: int, input_size: int):
        convs = [(in_channels, 64, 2), (64, 192, 1), (192, 384, 1), (384, 256, 1), (256, 256, 1)]
        pooled_after = {1: "pool1", 2: "pool2", 5: "pool3"}
        layers: dict[str, nn.Module] = {}
        probes = []
        n = input_size
        for k, (c_in, c_out, stride) in enumerate(convs, start=1):
            n = check_reaches("alexnet", f"conv{k}", n, conv_size(n, 3, stride, 1))
            layers[f"conv{k}"] = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
            layers[f"relu{k}"] = nn.ReLU(inplace=False)
            probes.append(f"relu{k}")
            if k in pooled_after:
                pool = pooled_after[k]
                n = check_reaches("alexnet", pool, n, conv_size(n, 2, 2, ceil=True))
                layers[pool] = nn.MaxPool2d(2, ceil_mode=True)
                probes.append(pool)
        layers.update(
            {
                "flatten": nn.Flatten(),
                "dropout1": nn.Dropout(0.5),
                "fc1": nn.Linear(256 * n * n, 4096),
                "relu6": nn.ReLU(inplace=False),
                "dropout2": nn.Dropout(0.5),
                "fc2": nn.Linear(4096, 4096),
                "relu7": nn.ReLU(inplace=False),
                "fc3": nn.Linear(4096, num_classes),
            }
        )
        super().__init__(layers, [*probes, "relu6", "relu7", OUTPUT])


@register_model("lenet")
def lenet(*, in_channels: int, num_classes: int, input_size: int) -> LeNet:
    """LeNet-5 (docs/science.md §5)."""
    return LeNet(in_channels, require_classes(num_classes), input_size)


@register_model("alexnet")
def alexnet(*, in_channels: int, num_classes: int, input_size: int) -> AlexNet:
    """AlexNet, CIFAR variant (docs/science.md §5)."""
    return AlexNet(in_channels, require_classes(num_classes), input_size)
