"""Architectures by name, so configs and checkpoints can say which network to rebuild.

A builder is a keyword-only function ``builder(*, in_channels, num_classes, input_size,
**options) -> nn.Module`` registered with :func:`register_model`. :func:`build` checks the options
against the builder's signature first, so a typo in a config fails with the option's name instead
of deep inside a constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

__all__ = ["build", "list_models", "model_options", "register_model"]

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


def model_options(name: str) -> dict[str, object]:
    """The options ``name`` accepts beyond the shape arguments, with their defaults."""
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
