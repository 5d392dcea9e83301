import logging

import pytest
import torch
from torch import nn

from diffsens.probes import OUTPUT, Probe, evaluating, layer_labels, list_layers


def net(inplace=True):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=inplace),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.lin(self.act(x)))


def test_inplace_activation_does_not_corrupt_recorded_tensor():
    model = net(inplace=True).eval()
    x = torch.randn(5, 1, 6, 6)
    with torch.no_grad():
        conv = model[0](x).clone()
    with Probe(model, ["0", "1", OUTPUT]) as probe, torch.no_grad():
        recorded = probe(x)
    assert (recorded["0"] < 0).any()  # the ReLU ran in place on it, but the copy kept the negatives
    torch.testing.assert_close(recorded["0"], conv.flatten(1))
    torch.testing.assert_close(recorded["1"], conv.clamp(min=0).flatten(1))
    assert recorded[OUTPUT].shape == (5, 3)
    assert list(recorded) == ["0", "1", OUTPUT]


def test_unknown_layer_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['conv9'\].*list_layers"):
        Probe(net(), ["conv9"])


def test_module_called_twice_is_refused():
    with Probe(Shared(), ["act"]) as probe, pytest.raises(RuntimeError, match="ran 2 times"):
        probe(torch.randn(2, 4))


def test_hooks_are_removed():
    model = net()
    with Probe(model, ["0"]):
        pass
    assert not model[0]._forward_hooks


def test_list_layers_in_depth_order_without_shared_modules(caplog):
    example = torch.randn(1, 1, 6, 6)
    assert list_layers(net(), example, kinds=("all",)) == ["0", "1", "2", "3", "4", "5", "6"]
    assert list_layers(net(), example) == ["1", "4"]  # the activations; no block but the net
    assert list_layers(net(), example, kinds=("conv", "norm")) == ["0", "2", "3"]
    with caplog.at_level(logging.WARNING, logger="diffsens.probes"):
        assert list_layers(Shared(), torch.randn(1, 4), kinds=("all",)) == ["lin"]
    # said, naming the model, not silently dropped
    assert "Shared: left out of the probe points, as they run more than once per pass: ['act']" in (
        caplog.text
    )
    with pytest.raises(ValueError, match="kinds must be some of"):
        list_layers(net(), example, kinds=("relu",))


def test_default_probe_points_of_torchvision_resnet18_are_blocks_and_activations():
    """59 modules run once in torchvision's resnet18; the default keeps the stem's ReLU and the
    eight residual blocks (their ReLUs run twice, and each stage repeats its last block)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=10).eval()
    example = torch.randn(1, 3, 32, 32)
    everything = list_layers(model, example, kinds=("all",))
    blocks = [f"layer{stage}.{block}" for stage in range(1, 5) for block in range(2)]
    assert list_layers(model, example) == ["relu", *blocks]
    assert "layer1" in everything and len(everything) > 40
    assert "layer1" not in list_layers(model, example)  # it returns its last block's output
    with Probe(model, ["relu", *blocks]) as probe, torch.no_grad():
        recorded = probe(example)  # every default point runs once, so the probe accepts it
    assert list(recorded) == ["relu", *blocks]


def test_numbered_layers_are_labelled_by_kind_and_rank_named_ones_keep_their_names():
    """In ``net()`` the ReLUs sit at positions 1 and 4, the convolutions at 0 and 2."""
    model = net()
    assert layer_labels(model, ["1", "4", "2", "6", OUTPUT]) == [
        "relu1",
        "relu2",
        "conv2",
        "linear1",
        OUTPUT,
    ]
    from torchvision.models import resnet18, vgg11

    features = ["features.1", "features.2", "features.4"]  # ReLU, MaxPool2d, ReLU
    assert layer_labels(vgg11(), features) == ["relu1", "maxpool1", "relu2"]
    blocks = ["relu", "layer1.0", "layer4.1", "avgpool"]  # named, or blocks of parts
    assert layer_labels(resnet18(), blocks) == blocks


def test_evaluating_restores_each_module():
    model = net().train()
    model[3].eval()  # a frozen batch norm stays frozen
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model[3].training and model[0].training
