"""Batched, device-side transforms used during training: normalisation, noise, crop and flip.

They act on whole batches already on the training device, drawing from an explicit generator, so
small datasets need no DataLoader workers and a resumed run draws exactly what the original did.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["NORMALISATION", "add_noise", "channel_statistics", "normalise", "random_crop_flip"]

NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}
"""Per-channel (mean, std) of pixel values in [0, 1]."""


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scale uint8 ``(N, C, H, W)`` images to [0, 1] and standardise them per channel."""
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (mean, std))
    return ((images.float() / 255) - mean) / std


def channel_statistics(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1]."""
    scaled = images.double().div(255).transpose(0, 1).flatten(1)
    return scaled.mean(1).tolist(), scaled.std(1).tolist()


def add_noise(images: torch.Tensor, level: float, generator: torch.Generator | None = None):
    """Add Gaussian noise whose whole-image NORM is about ``level``: ``level * g / sqrt(C H W)``.

    Applied after normalisation and redrawn at every call (docs/science.md §4).
    """
    if level == 0:
        return images
    g = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return images + g * (level / images[0].numel() ** 0.5)


def random_crop_flip(
    images: torch.Tensor,
    padding: int,
    fill: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop of the original size from the image padded by ``padding``, then (``flip``) a
    random horizontal flip with probability 1/2, independently per image. Digits want no flip.

    ``fill`` holds the per-channel padding value: the normalised value of a black pixel, so the
    padding is what torchvision's RandomCrop gives before normalisation.
    """
    b, c, h, w = images.shape
    device = images.device
    padded = fill.to(images).view(1, c, 1, 1).expand(b, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding : padding + h, padding : padding + w] = images
    dy, dx = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=device)
    rows = dy[:, None] + torch.arange(h, device=device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=device)  # (B, W)
    if flip:
        flipped = torch.randint(0, 2, (b,), generator=generator, device=device) == 1
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
