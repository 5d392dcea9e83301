"""Architectures by name, so configs and checkpoints can say which net to rebuild.

The architectures are those of docs/science.md §5 and the theory net of §8.

>>> model = build("vgg11_bn", in_channels=3, num_classes=10, input_size=32)

Every model is a :class:`Network` (an ``nn.Sequential`` with readable layer names) carrying
``probe_points``: the names of the layers to measure, in depth order, mapped to depth 1..K, ready
for ``diffsens.sensitivity.measure(model, images, layers=model.probe_points)``. Activations are
never in place and never shared between layers, so each probe point runs once per forward pass.
"""

from diffsens.models import classic, efficientnet, fc, resnet, simple, vgg
from diffsens.models._layers import Network
from diffsens.models._registry import (
    build,
    build_spec,
    check_spec,
    is_external,
    list_models,
    model_options,
    register_model,
)
from diffsens.models.classic import *  # noqa: F403
from diffsens.models.efficientnet import *  # noqa: F403
from diffsens.models.fc import *  # noqa: F403
from diffsens.models.resnet import *  # noqa: F403
from diffsens.models.simple import *  # noqa: F403
from diffsens.models.vgg import *  # noqa: F403

__all__ = [
    "Network",
    "build",
    "build_spec",
    "check_spec",
    "is_external",
    "list_models",
    "model_options",
    "register_model",
    *classic.__all__,
    *efficientnet.__all__,
    *fc.__all__,
    *resnet.__all__,
    *simple.__all__,
    *vgg.__all__,
]
