"""A prepared dataset: normalised float32 tensors plus what training needs to know, in one file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from diffsens._io import load_torch, save_torch
from diffsens.data import scale_detection, sources
from diffsens.data.transforms import NORMALISATION, add_noise, normalise

__all__ = ["DATASETS", "PreparedData", "prepare", "probe_set"]


@dataclass(frozen=True)
class PreparedData:
    """Images ``(N, C, H, W)`` or ``(N, C, L)`` in float32, ready for the network.

    ``labels`` are int64 class indices (``num_classes`` > 1) or float32 +1/-1 (``num_classes`` =
    1, hinge loss). ``fill`` is the per-channel value of a black pixel after normalisation (the
    padding of random crops). ``settings`` records how the data were made.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    fill: tuple[float, ...]
    settings: dict = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def input_size(self) -> int:
        return self.train_images.shape[-1]

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temporary file, then rename)."""
        return save_torch(asdict(self), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        fields = load_torch(path, "prepared dataset")
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(
                f"prepared dataset {os.fspath(path)!r} has unexpected fields"
            ) from error


def _images(name: str, splits, settings: dict, statistics: str | None = None) -> PreparedData:
    """Normalise real images with the statistics of ``statistics`` (default: ``name``)."""
    (train_x, train_y), (test_x, test_y) = splits
    statistics = statistics or name
    mean, std = NORMALISATION[statistics]
    return PreparedData(
        name=name,
        train_images=normalise(train_x, statistics),
        train_labels=train_y,
        test_images=normalise(test_x, statistics),
        test_labels=test_y,
        num_classes=10,
        fill=tuple(-m / s for m, s in zip(mean, std, strict=True)),
        settings=settings,
    )


def _synthetic(name: str, splits, settings: dict) -> PreparedData:
    (train_x, train_y), (test_x, test_y) = splits
    return PreparedData(name, train_x, train_y, test_x, test_y, 1, (0.0,), settings)


def _cifar10(root: str = "data", download: bool = True, verify: bool = True) -> PreparedData:
    settings = {"root": os.fspath(root)}
    return _images("cifar10", sources.cifar10(root, download=download, verify=verify), settings)


def _mnist(root: str = "data", download: bool = True) -> PreparedData:
    return _images("mnist", sources.mnist(root, download=download), {"root": os.fspath(root)})


def _fashion_mnist(root: str = "data", download: bool = True) -> PreparedData:
    splits = sources.fashion_mnist(root, download=download)
    return _images("fashion_mnist", splits, {"root": os.fspath(root)})


def _mnist5k(n_test: int = 1000, seed: int = 0) -> PreparedData:
    splits = sources.mnist5k(n_test=n_test, seed=seed)
    return _images("mnist5k", splits, {"n_test": n_test, "seed": seed}, statistics="mnist")


def _scale_detection_2d(**settings) -> PreparedData:
    return _synthetic(
        "scale_detection_2d", scale_detection.scale_detection_2d(**settings), settings
    )


def _scale_detection_1d(**settings) -> PreparedData:
    return _synthetic(
        "scale_detection_1d", scale_detection.scale_detection_1d(**settings), settings
    )


DATASETS = {
    "cifar10": _cifar10,
    "mnist": _mnist,
    "fashion_mnist": _fashion_mnist,
    "mnist5k": _mnist5k,
    "scale_detection_2d": _scale_detection_2d,
    "scale_detection_1d": _scale_detection_1d,
}


def prepare(name: str, **settings) -> PreparedData:
    """Load or generate dataset ``name`` with its ``settings`` (see each loader's arguments)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    try:
        return DATASETS[name](**settings)
    except TypeError as error:
        if "unexpected keyword" in str(error):
            raise TypeError(f"dataset {name!r}: {error}") from error
        raise


def probe_set(
    data: PreparedData, n: int, *, seed: int = 0, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test images (and labels) drawn without replacement by a seeded permutation.

    ``noise`` adds the training-noise transform once, seeded, to probe a noisy-trained net on the
    distribution it saw.
    """
    available = len(data.test_images)
    if not 0 < n <= available:
        raise ValueError(f"probe set size must be in 1..{available} (the test set), got {n}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(available, generator=generator)[:n]
    return add_noise(data.test_images[index], noise, generator), data.test_labels[index]
