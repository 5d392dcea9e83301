"""Argument checks shared by the library: errors name the argument and say what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_tensor(name: str, value: object, dims: str) -> torch.Tensor:
    """Check that ``value`` is a floating-point tensor whose rank matches ``dims`` ("B C H W")."""
    labels = dims.split()
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape ({dims}), got {type(value).__name__}"
        )
    if value.ndim != len(labels):
        raise ValueError(f"{name} must have shape ({dims}), got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_sizes_agree(dims: str, **tensors: tuple[torch.Tensor, str]) -> None:
    """Check that every dimension label shared by several tensors has one size across them.

    ``tensors`` maps an argument name to ``(tensor, "B C H W")``; only ``dims`` labels count.
    """
    seen: dict[str, tuple[str, int]] = {}
    for name, (tensor, labels) in tensors.items():
        for label, size in zip(labels.split(), tensor.shape, strict=True):
            if label not in dims.split():
                continue
            if label in seen and seen[label][1] != size:
                other, other_size = seen[label]
                raise ValueError(
                    f"size {label} of {name} ({size}) does not match size {label} of {other} "
                    f"({other_size}): shapes {tuple(tensor.shape)} vs expected {label}={other_size}"
                )
            seen.setdefault(label, (name, size))


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive(name: str, value: float, *, strict: bool = True) -> float:
    ok = value > 0 if strict else value >= 0
    if not ok or value != value:  # NaN fails both
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value
