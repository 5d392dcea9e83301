import pytest
import torch
from torch import nn

from diffsens.probes import OUTPUT, Probe, evaluating, list_layers


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


def test_list_layers_in_depth_order_without_shared_modules():
    assert list_layers(net(), torch.randn(1, 1, 6, 6)) == ["0", "1", "2", "3", "4", "5", "6"]
    assert list_layers(Shared(), torch.randn(1, 4)) == ["lin"]


def test_evaluating_restores_each_module():
    model = net().train()
    model[3].eval()  # a frozen batch norm stays frozen
    with evaluating(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model[3].training and model[0].training
