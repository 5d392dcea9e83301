"""Perturbations other than smooth diffeomorphisms: matched noise, one-pixel moves and shifts.

Noise is *matched* to a deformation image by image, ``||eta_i|| = ||tau_i x_i - x_i||``, so that the
diffeo and noise sensitivities compare perturbations of equal size (docs/science.md §2). Three
conventions (:data:`NOISES`) say how the noise meets the input. The one-pixel moves are the
discrete deformations of the scale-detection tasks, the one-pixel shift that of the
constant-filter theory (docs/science.md §3, §8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffsens._checks import check_choice, check_float_dtype, check_int, check_tensor

__all__ = ["NOISES", "matched_noise", "move_pixels", "noisy", "random_directions", "shift"]

NOISES = ("gaussian", "rectified", "rectified_input")
"""How matched noise ``eta`` meets the input ``x``: ``x + eta`` (Gaussian), ``x + eta`` with a
rectified (non-negative) direction, or ``relu(x + eta)`` (the noisy input rectified: the
constant-filter theory in the authors' convention, docs/science.md §2, §8)."""


def random_directions(
    shape: tuple[int, ...] | torch.Size,
    *,
    rectify: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Unit vectors ``g_i / ||g_i||``, ``g_i ~ N(0, I)``, one per leading index of ``shape``.

    With ``rectify`` the Gaussian is passed through a ReLU before normalising: the noise then has a
    positive mean, as noise has after a network's first ReLU (the constant-filter theory,
    docs/science.md §8).
    Drawn on the generator's device (CPU without one) and moved to ``device``.
    """
    if isinstance(shape, str) or not isinstance(shape, Sequence):
        raise TypeError(f"shape must be a tuple of sizes (count, features, ...), got {shape!r}")
    if len(shape) < 2:
        raise ValueError(f"shape must hold at least 2 sizes (count, features, ...), got {shape!r}")
    shape = tuple(check_int(f"shape[{axis}]", size, 1) for axis, size in enumerate(shape))
    check_float_dtype("dtype", dtype)
    source = generator.device if generator is not None else torch.device("cpu")
    g = torch.randn(shape, generator=generator, device=source, dtype=dtype)
    if rectify:
        g = g.clamp(min=0)
    norms = g.flatten(1).norm(dim=1).clamp(min=torch.finfo(g.dtype).tiny)
    return (g / norms.view(-1, *[1] * (g.ndim - 1))).to(device or source)


def matched_noise(
    clean: torch.Tensor,
    deformed: torch.Tensor,
    *,
    rectify: bool = False,
    generator: torch.Generator | None = None,
    directions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noise ``eta_i`` with ``||eta_i|| = ||deformed_i - clean_i||`` for every input ``i``.

    ``directions`` (unit vectors from :func:`random_directions`) may be given to reuse one draw,
    e.g. across temperatures; otherwise they are drawn here.
    """
    check_tensor("clean", clean, "B F ...")
    check_tensor("deformed", deformed, "B F ...")
    if clean.shape != deformed.shape:
        raise ValueError(
            f"clean and deformed must have the same shape, got {tuple(clean.shape)} "
            f"and {tuple(deformed.shape)}"
        )
    if directions is None:
        directions = random_directions(
            clean.shape,
            rectify=rectify,
            generator=generator,
            device=clean.device,
            dtype=clean.dtype,
        )
    else:
        check_tensor("directions", directions, "B F ...")
        if directions.shape != clean.shape:
            raise ValueError(
                f"directions must have the shape of clean {tuple(clean.shape)}, "
                f"got {tuple(directions.shape)}"
            )
    norms = (deformed - clean).flatten(1).norm(dim=1)
    return directions.to(clean) * norms.view(-1, *[1] * (clean.ndim - 1))


def noisy(
    clean: torch.Tensor,
    deformed: torch.Tensor,
    noise: str = "gaussian",
    *,
    generator: torch.Generator | None = None,
    directions: torch.Tensor | None = None,
) -> torch.Tensor:
    """The noisy inputs of convention ``noise`` (:data:`NOISES`), with noise matched to
    ``deformed``.

    ``rectified_input`` rectifies the noisy input, ``relu(clean + eta)``: where ``clean`` is 0 the
    negative half of the noise is cut, so the net receives less than the matched norm.
    ``directions`` must then be Gaussian (not rectified) ones.
    """
    check_choice("noise", noise, NOISES)
    eta = matched_noise(
        clean, deformed, rectify=noise == "rectified", generator=generator, directions=directions
    )
    return (clean + eta).clamp(min=0) if noise == "rectified_input" else clean + eta


def shift(inputs: torch.Tensor) -> torch.Tensor:
    """Every input translated by one pixel along its last axis, circularly (the last pixel comes
    back first): the move of the constant-filter theory, as the authors make it."""
    check_tensor("inputs", inputs, "B C ...")
    return inputs.roll(1, -1)


def move_pixels(
    inputs: torch.Tensor,
    *,
    block: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Move every active (non-zero) pixel one step, independently, clipped to the input.

    * 1-D inputs ``(B, C, L)``: a step of +1 or -1. With ``block`` (the 1D task's block length
      ``xi``), a step that would carry the pixel into another block is undone, so labels stay valid.
    * 2-D inputs ``(B, C, H, W)``: a step to one of the 8 neighbours, direction ``round(g / |g|)``
      with ``g ~ N(0, I_2)``.

    All channels of a pixel move together. Pixels landing on the same site add up.
    """
    check_tensor("inputs", inputs, "B C ...")
    if inputs.ndim not in (3, 4):
        raise ValueError(
            f"inputs must have shape (B, C, L) or (B, C, H, W), got {tuple(inputs.shape)}"
        )
    if block is not None:
        check_int("block", block, 1)
        if inputs.ndim != 3:
            raise ValueError(
                f"block only applies to 1-D inputs (B, C, L), got inputs of shape "
                f"{tuple(inputs.shape)}"
            )
    source = generator.device if generator is not None else torch.device("cpu")
    channels_last = inputs.movedim(1, -1)  # (B, *spatial, C): one row of values per site
    sites = channels_last.abs().sum(-1).nonzero(as_tuple=True)
    values = channels_last[sites]
    spatial = inputs.shape[2:]
    if inputs.ndim == 3:
        (position,) = sites[1:]
        step = torch.randint(0, 2, position.shape, generator=generator, device=source) * 2 - 1
        moved = (position + step.to(position.device)).clamp(0, spatial[0] - 1)
        if block is not None:
            moved = torch.where(moved // block == position // block, moved, position)
        new_sites = (sites[0], moved)
    else:
        g = torch.randn((values.shape[0], 2), generator=generator, device=source)
        step = (g / g.norm(dim=1, keepdim=True)).round().long().to(inputs.device)
        new_sites = tuple(
            (coord + step[:, axis]).clamp(0, spatial[axis] - 1)
            for axis, coord in enumerate(sites[1:])
        )
        new_sites = (sites[0], *new_sites)
    out = torch.zeros_like(channels_last)
    out.index_put_(new_sites, values, accumulate=True)
    return out.movedim(-1, 1).contiguous()
