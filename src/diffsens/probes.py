"""Record a model's intermediate activations by module name, all in one forward pass.

Layers are addressed by their ``named_modules`` path (``"features.3"``, ``"layer2.1"``), plus
``"output"`` for the model's output. Each recorded tensor is copied as soon as its module returns,
so an in-place operation further down the network (``nn.ReLU(inplace=True)``) cannot change it.
A module that runs more than once per forward pass (a shared activation, say) has no single
output and is refused.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "KINDS", "OUTPUT", "Probe", "evaluating", "layer_labels", "list_layers"]

logger = logging.getLogger(__name__)
OUTPUT = "output"
"""Name under which the model's own output is recorded."""


class Probe:
    """Context manager that records the named layers of ``model`` on every call.

    >>> with Probe(model, ["features.1", "output"]) as probe:
    ...     activations = probe(images)  # {"features.1": (B, F1), "output": (B, F2)}

    Activations come back flattened to ``(batch, features)``, in the order of ``layers``. With
    ``probe(images, reduce=fn)`` each layer's activations go to ``fn(name, features)`` the moment
    the layer returns, uncopied, and ``fn``'s results come back instead: nothing large is kept.
    ``channel_mean`` averages every activation with a spatial axis over its channels first (the
    representation of the paper's 1-D figure); outputs without one (logits) stay as they are.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *, channel_mean: bool = False):
        self.model = model
        self.layers = list(layers)
        self.channel_mean = channel_mean
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be distinct, got {self.layers}")
        modules = dict(model.named_modules())
        modules.pop("", None)
        unknown = [name for name in self.layers if name != OUTPUT and name not in modules]
        if unknown:
            known = ", ".join(list(modules)[:30]) + (", ..." if len(modules) > 30 else "")
            raise ValueError(
                f"unknown layer name(s) {unknown}: expected {OUTPUT!r} or a module path of the "
                f"model ({known}); diffsens.probes.list_layers(model, example) lists them in order"
            )
        self._modules = {name: modules[name] for name in self.layers if name != OUTPUT}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._recorded: dict[str, list] = {}
        self._reduce: Callable = _copy

    def __enter__(self) -> Probe:
        for name, module in self._modules.items():
            self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _recorder(self, name: str):
        def record(module, args, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} returns {type(output).__name__}, not a tensor; probe a module "
                    f"that returns one tensor"
                )
            features = self._features(output)
            self._recorded.setdefault(name, []).append(self._reduce(name, features))

        return record

    def __call__(self, inputs: torch.Tensor, reduce: Callable | None = None) -> dict:
        if not self._handles and self._modules:
            raise RuntimeError(
                "Probe must be used as a context manager: `with Probe(...) as probe:`"
            )
        self._recorded = {}
        self._reduce = reduce or _copy
        output = self.model(inputs)
        for name in self._modules:
            calls = len(self._recorded.get(name, []))
            if calls != 1:
                raise RuntimeError(
                    f"layer {name!r} ran {calls} times in one forward pass; expected exactly once. "
                    f"Probe a module that runs once (not a shared activation or an unused module)"
                )
        results = {name: self._recorded[name][0] for name in self._modules}
        if OUTPUT in self.layers:
            results[OUTPUT] = self._reduce(OUTPUT, self._features(output))
        return {name: results[name] for name in self.layers}

    def _features(self, output: torch.Tensor) -> torch.Tensor:
        output = output.detach()
        if self.channel_mean and output.ndim > 2:
            output = output.mean(1, keepdim=True)
        return output.flatten(1)


def _copy(name: str, features: torch.Tensor) -> torch.Tensor:
    return features.clone()


ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
)
"""The nonlinearities that count as probe points of kind ``"activation"``."""
KINDS = ("activation", "block", "conv", "linear", "norm", "pool", "all")
"""Kinds of probe point for :func:`list_layers`: nonlinearities (:data:`ACTIVATIONS`), blocks (a
module with parts that is itself a step of an ``nn.Sequential``: a residual block, a stage; not a
side branch such as a ResNet shortcut), convolutions, linear layers, normalisations, pooling
layers, or every module."""


def _of_kinds(model: nn.Module, kinds: Sequence[str]) -> set[str]:
    """The names of ``model``'s modules of any of ``kinds``."""
    steps = {
        f"{parent}.{child}" if parent else child
        for parent, module in model.named_modules()
        if isinstance(module, nn.Sequential)
        for child, _ in module.named_children()
    }
    chosen = set()
    for name, module in model.named_modules():
        has_parts = next(module.children(), None) is not None
        kind_of = {
            "activation": isinstance(module, ACTIVATIONS),
            "block": has_parts and name in steps,
            "conv": isinstance(module, nn.modules.conv._ConvNd),
            "linear": isinstance(module, nn.Linear),
            "norm": isinstance(
                module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm
            ),
            "pool": "pooling" in type(module).__module__,
            "all": True,
        }
        if name and any(kind_of[kind] for kind in kinds):
            chosen.add(name)
    return chosen


def list_layers(
    model: nn.Module, example: torch.Tensor, kinds: Sequence[str] = ("activation", "block")
) -> list[str]:
    """Probe points of ``model``: the modules of the given ``kinds`` (:data:`KINDS`) that run
    exactly once on ``example``, in the order they finish (a block after its parts).

    The default, activations and blocks, gives the representation after each nonlinearity and
    after each residual or sequential block; a block whose output is the very tensor one of its
    listed parts returns (a ``Sequential`` repeats its last child) is left out, so no point
    repeats another. Modules that run more than once per pass (a ReLU shared by two layers)
    cannot be probed: they are left out and named in a warning. ``kinds=("all",)`` lists every
    module that runs once, repeats included.
    """
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {list(KINDS)}, got {list(kinds)}")
    wanted = _of_kinds(model, kinds)
    order: list[str] = []
    counts: dict[str, int] = {}
    outputs: dict[str, object] = {}

    def hook_for(name: str):
        def hook(module, args, output):
            counts[name] = counts.get(name, 0) + 1
            outputs[name] = output
            if counts[name] == 1 and isinstance(output, torch.Tensor):
                order.append(name)

        return hook

    handles = [
        module.register_forward_hook(hook_for(name))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.inference_mode(), evaluating(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    shared = [name for name in order if name in wanted and counts[name] > 1]
    if shared:
        logger.warning(
            "%s: left out of the probe points, as they run more than once per pass: %s",
            type(model).__name__,
            shared,
        )
    listed = [name for name in order if name in wanted and counts[name] == 1]
    if "all" in kinds:
        return listed
    kept = []
    for name in listed:
        parts = [other for other in kept if other.startswith(f"{name}.")]
        if not any(outputs[other] is outputs[name] for other in parts):
            kept.append(name)
    return kept


def layer_labels(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Readable names of probed layers, for axes and tables: a module path that ends in a word
    (``relu3``, ``avgpool``) or names a block of parts (``layer2.1``) stays as it is; a single
    module at a numbered position (``3`` or ``features.3`` of an
    ``nn.Sequential``) becomes its kind and its rank among the model's modules of that kind
    (``relu2``: the model's second ReLU), which reads as what the layer is, not as depth."""
    ranks: dict[str, str] = {}
    counts: dict[str, int] = {}
    for path, module in model.named_modules():
        if not path or next(module.children(), None) is not None:
            continue
        kind = re.sub(r"\dd$", "", type(module).__name__.lower())
        counts[kind] = counts.get(kind, 0) + 1
        ranks[path] = f"{kind}{counts[kind]}"
    return [
        ranks[name] if name.rpartition(".")[2].isdigit() and name in ranks else name
        for name in names
    ]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (frozen batch norm, no dropout); restore every module's mode."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
