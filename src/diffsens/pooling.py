"""Spatial versus channel pooling (SPEC section 7).

The channel-shuffle test keeps every filter's spatial profile but scrambles which input channels
it combines: if a trained net's stability survives the shuffle, it came from spatial pooling
(smooth filters); if it is lost, from channel pooling (channels combining deformed versions of a
feature).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["shuffle_channels"]


def shuffle_channels(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose conv weights have their input-channel axis permuted.

    One random permutation per layer, shared by all of that layer's filters; convolutions with a
    single input channel per group (depthwise, or the first layer of a grey-scale net) have
    nothing to permute and are left alone. Linear layers are untouched.
    """
    shuffled = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in shuffled.modules():
            if isinstance(module, nn.modules.conv._ConvNd) and module.weight.shape[1] > 1:
                order = torch.randperm(module.weight.shape[1], generator=generator)
                module.weight.copy_(module.weight[:, order.to(module.weight.device)])
    return shuffled
