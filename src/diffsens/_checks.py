"""Argument checks shared by the library: errors name the argument, what it got and what was
expected, and fire at a function's entry, before any work (no complex root, NaN or division by
zero surfacing later from a bad argument)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch


def check_tensor(name: str, value: object, dims: str) -> torch.Tensor:
    """Check that ``value`` is a floating-point tensor whose rank matches ``dims`` ("B C H W"; a
    trailing "..." allows any number of further axes)."""
    labels = dims.split()
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape ({dims}), got {type(value).__name__}"
        )
    if labels[-1] == "...":
        rank_ok = value.ndim >= len(labels) - 1
    else:
        rank_ok = value.ndim == len(labels)
    if not rank_ok:
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


def check_int(name: str, value: object, minimum: int) -> int:
    """An integer of at least ``minimum``; a bool is refused, ``True`` being no size or count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_cut(cut: object) -> float:
    """The diffeo cut-off: finite and > 1, as the temperature formulas divide by ln(cut)."""
    if isinstance(cut, bool) or not isinstance(cut, numbers.Real):
        raise TypeError(f"cut must be a real number > 1, got {cut!r}")
    if not 1 < cut < math.inf:
        raise ValueError(
            f"cut must be > 1 and finite (the temperature formulas use ln cut), got {cut!r}"
        )
    return float(cut)


def check_positive(name: str, value: object, *, strict: bool = True) -> np.ndarray:
    """Check finite values > 0 (>= 0 unless ``strict``) in a real number, a NumPy array or a
    tensor, element by element; return them as a float64 array."""
    if isinstance(value, torch.Tensor):
        real = not (value.dtype.is_complex or value.dtype == torch.bool)
        values = value.detach().to("cpu", torch.float64).numpy() if real else None
    else:
        real = isinstance(value, np.ndarray) and value.dtype.kind in "iuf"
        real |= isinstance(value, numbers.Real) and not isinstance(value, bool)
        values = np.asarray(value, dtype=np.float64) if real else None
    if values is None:
        raise TypeError(
            f"{name} must be a real number, or a NumPy array or tensor of them, got {value!r}"
        )
    ok = np.isfinite(values) & (values > 0 if strict else values >= 0)
    if not ok.all():
        got = values[~ok].tolist() if values.ndim else values.item()
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} 0, got {got}")
    return values


def check_float_dtype(name: str, dtype: object) -> torch.dtype | None:
    """``None`` (torch's default) or a floating-point dtype: Gaussian draws need one."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"{name} must be a floating-point torch.dtype or None, got {dtype!r}")
    return dtype


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Refuse NaN or infinite values, naming the indices along the first axis that hold them:
    downstream they would turn every statistic into NaN without saying where they came from."""
    bad = (~torch.isfinite(tensor).flatten(1).all(1)).nonzero().flatten().tolist()
    if len(bad) > 10:
        raise ValueError(
            f"{name} {bad[:10]} (the first 10 of {len(bad)}) hold NaN or infinite values"
        )
    if bad:
        raise ValueError(f"{name} {bad} hold NaN or infinite values")
