"""Architectures by name, so configs and checkpoints can say which network to rebuild.

A builder is a keyword-only function ``builder(*, in_channels, num_classes, input_size,
**options) -> nn.Module`` registered with :func:`register_model`. :func:`build` checks the options
against the builder's signature first, so a typo in a config fails with the option's name instead
of deep inside a constructor.

A name with a colon is a model from outside the registry: ``torchvision:resnet18`` (a
classification builder of torchvision, given ``num_classes``) or ``package.module:function`` (any
function returning an ``nn.Module`` of images, given those of ``in_channels``, ``num_classes`` and
``input_size`` it names as parameters). Their other options go to the function as they are.
Without ``probe_points`` of its own, such a model is probed at its activations and blocks
(:func:`diffsens.probes.list_layers`) and at its output.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping

import torch
from torch import nn

from diffsens.probes import OUTPUT, list_layers

__all__ = [
    "build",
    "build_spec",
    "check_spec",
    "is_external",
    "list_models",
    "model_options",
    "register_model",
]

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}
_SHAPE_ARGUMENTS = ("in_channels", "num_classes", "input_size")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Register a builder under ``name``; a second builder with the same name is refused."""

    def decorator(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(
                f"model {name!r} is already registered (by {_BUILDERS[name].__module__}."
                f"{_BUILDERS[name].__qualname__}); choose another name"
            )
        _check_signature(name, builder)
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_BUILDERS)


def is_external(name: str) -> bool:
    """Whether ``name`` is a model from outside the registry (``module:function``)."""
    return ":" in name


def model_options(name: str) -> dict[str, object]:
    """The options registered model ``name`` accepts beyond the shape arguments, with their
    defaults."""
    return {
        parameter.name: parameter.default
        for parameter in inspect.signature(_builder(name)).parameters.values()
        if parameter.name not in _SHAPE_ARGUMENTS
    }


def build(
    name: str, *, in_channels: int, num_classes: int | None, input_size: int, **options
) -> nn.Module:
    """Build the registered architecture ``name`` for inputs ``(B, in_channels, input_size, ...)``.

    ``input_size`` is the side of a square image (2-D) or the length of a signal (1-D).
    ``num_classes`` outputs (1 for the hinge loss); ``None`` only where the model has no readout.
    The model carries ``probe_points``: probe-point names in depth order -> depth index 1..K.
    """
    if is_external(name):
        return _build_external(
            name, in_channels=in_channels, num_classes=num_classes, input_size=input_size, **options
        )
    builder = _builder(name)
    accepted = {
        parameter.name
        for parameter in inspect.signature(builder).parameters.values()
        if parameter.name not in _SHAPE_ARGUMENTS
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(
            f"model {name!r} has no option(s) {unknown}; its options are "
            f"{sorted(accepted) or 'none'}"
        )
    _check_size("in_channels", in_channels)
    _check_size("input_size", input_size)
    if num_classes is not None:
        _check_size("num_classes", num_classes)
    model = builder(
        in_channels=in_channels, num_classes=num_classes, input_size=input_size, **options
    )
    if not isinstance(getattr(model, "probe_points", None), dict):
        raise TypeError(f"builder of model {name!r} returned a model without probe_points")
    return model


def build_spec(
    spec: Mapping, *, in_channels: int, num_classes: int | None, input_size: int
) -> nn.Module:
    """Build a model spec ``{"name": ..., **options}`` (the form configs and checkpoints use)."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a model spec is a mapping with a 'name', got {spec!r}")
    options = {key: value for key, value in spec.items() if key != "name"}
    return build(
        spec["name"],
        in_channels=in_channels,
        num_classes=num_classes,
        input_size=input_size,
        **options,
    )


def check_spec(spec: Mapping, *, dims: int, in_channels: int, num_classes: int, input_size: int):
    """Check that ``spec`` builds for this data and maps a batch to ``num_classes`` outputs.

    The model is made on PyTorch's meta device (no initialisation), given zeroed CPU memory and
    run on one zero input, so a bad option, a net too deep for its input or a 1-D net on images
    fails in milliseconds, before any job starts. Raises ``ValueError`` (``TypeError`` for
    unknown options).
    """
    shape = (1, in_channels, *[input_size] * dims)
    with torch.device("meta"):
        model = build_spec(
            spec, in_channels=in_channels, num_classes=num_classes, input_size=input_size
        )
    model = model.to_empty(device="cpu").eval()
    with torch.inference_mode():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
        try:
            output = model(torch.zeros(shape))
        except Exception as error:
            raise ValueError(_cannot_take(spec["name"], shape, error)) from None
    if tuple(output.shape) != (1, num_classes):
        raise ValueError(
            f"model {spec['name']!r} maps inputs of shape {shape} to {tuple(output.shape)}, "
            f"not to one score per class ({(1, num_classes)})"
        )


def _build_external(
    name: str, *, in_channels: int, num_classes: int | None, input_size: int, **options
) -> nn.Module:
    builder, takes = _external_builder(name)
    shape = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    given = {key: shape[key] for key in takes if shape[key] is not None}
    try:
        model = builder(**given, **options)
    except TypeError as error:
        raise TypeError(f"model {name!r} with options {options}: {error}") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"model {name!r} returned a {type(model).__name__}, not an nn.Module")
    if not isinstance(getattr(model, "probe_points", None), dict):
        example = torch.zeros(1, in_channels, input_size, input_size)
        try:
            points = [*list_layers(model, example), OUTPUT]
        except Exception as error:
            raise ValueError(_cannot_take(name, example.shape, error)) from None
        model.probe_points = {point: depth for depth, point in enumerate(points, start=1)}
    return model


def _external_builder(name: str) -> tuple[Builder, list[str]]:
    """The function behind ``module:function``, and the shape arguments to give it."""
    module_name, _, function = name.partition(":")
    if module_name == "torchvision":
        from torchvision import models

        available = models.list_models(module=models)
        if function not in available:
            raise ValueError(
                f"torchvision has no classification model {function!r}; it has "
                f"{', '.join(available)}"
            )
        return models.get_model_builder(function), ["num_classes"]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"model {name!r}: cannot import {module_name!r} ({error})") from None
    builder = getattr(module, function, None)
    if not callable(builder):
        raise ValueError(f"model {name!r}: module {module_name!r} has no function {function!r}")
    parameters = inspect.signature(builder).parameters
    return builder, [argument for argument in _SHAPE_ARGUMENTS if argument in parameters]


def _cannot_take(name: str, shape, error: Exception) -> str:
    return (
        f"model {name!r} cannot take inputs of shape {tuple(shape)} "
        f"({type(error).__name__}: {error})"
    )


def _builder(name: str) -> Builder:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}"
        ) from None


def _check_signature(name: str, builder: Builder) -> None:
    """Builders take keyword-only arguments, the three shape arguments among them."""
    parameters = inspect.signature(builder).parameters.values()
    positional = [p.name for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    missing = [arg for arg in _SHAPE_ARGUMENTS if arg not in {p.name for p in parameters}]
    if positional or missing:
        raise TypeError(
            f"builder for model {name!r} must take keyword-only arguments including "
            f"{list(_SHAPE_ARGUMENTS)}; positional or variadic: {positional}, missing: {missing}"
        )


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
