"""A prepared dataset: normalised float32 tensors plus what training needs to know, in one file.

Each source is declared once in :data:`DATASETS` with its loader and its shape: the shape
(:class:`DataShape`) follows from the settings alone, so a config can be checked against the
networks and the measurement before anything is downloaded or generated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from diffsens.data import scale_detection, sources
from diffsens.data.transforms import NORMALISATION, add_noise, channel_statistics, normalise
from diffsens.io import CorruptedFile, digest, load_torch, save_torch
from diffsens.settings import dataset_group, resolve

__all__ = [
    "DATASETS",
    "DataShape",
    "PreparedData",
    "Source",
    "data_shape",
    "prepare",
    "probe_set",
]


SPARSE = 0.05
"""Largest share of non-zero input values of a sparse dataset."""


@dataclass(frozen=True)
class DataShape:
    """What networks and measurements need to know of a dataset, without its contents.

    ``dims`` is 2 for images ``(N, C, n, n)``, 1 for signals ``(N, C, n)``; ``num_classes`` is 1
    for +1/-1 labels (hinge loss); ``sparse`` inputs are a few active pixels on zeros (the
    scale-detection tasks), what one-pixel moves are made for.
    """

    dims: int
    in_channels: int
    input_size: int
    num_classes: int
    n_train: int
    n_test: int
    sparse: bool = False

    @property
    def network(self) -> dict[str, int]:
        """What a network is built for (the shape arguments of ``diffsens.models.build``, which
        checkpoints record as ``data_shape``)."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "input_size": self.input_size,
        }


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

    @property
    def shape(self) -> DataShape:
        return DataShape(
            dims=self.train_images.ndim - 2,
            in_channels=self.in_channels,
            input_size=self.input_size,
            num_classes=self.num_classes,
            n_train=len(self.train_images),
            n_test=len(self.test_images),
            sparse=bool((self.test_images != 0).float().mean() < SPARSE),
        )

    def fingerprint(self) -> str:
        """SHA-256 of the contents (images, labels, classes, fill): any change of the data changes
        it; where they were read from (``settings`` such as ``root``) does not."""
        contents = self._fields()
        del contents["settings"]
        return digest(contents)

    def describe(self) -> dict:
        """Name, settings and fingerprint: what checkpoints and cubes record of their data."""
        return {
            "name": self.name,
            "settings": dict(self.settings),
            "fingerprint": self.fingerprint(),
        }

    def _fields(self) -> dict:
        """The fields by name, uncopied (``dataclasses.asdict`` would deep-copy the tensors)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically, with a checksum verified by :meth:`load`."""
        return save_torch(self._fields(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreparedData:
        saved = load_torch(path, "prepared dataset")
        expected = {f.name for f in fields(cls)}
        if set(saved) != expected:
            kind = "a checkpoint" if "state_dict" in saved else f"keys {sorted(saved)}"
            raise CorruptedFile(
                path,
                "prepared dataset",
                f"holds {kind}, not a prepared dataset",
                "give a prepared dataset (results/data/NAME.pt) or a dataset source name",
            )
        return cls(**saved)


def _images(
    name: str, splits, settings: dict, statistics=None, num_classes: int = 10
) -> PreparedData:
    """Real images normalised with per-channel ``statistics`` (mean, std), by default those of
    :data:`NORMALISATION` for ``name``."""
    (train_x, train_y), (test_x, test_y) = splits
    mean, std = statistics or NORMALISATION[name]
    return PreparedData(
        name=name,
        train_images=normalise(train_x, mean, std),
        train_labels=train_y,
        test_images=normalise(test_x, mean, std),
        test_labels=test_y,
        num_classes=num_classes,
        fill=tuple(-m / s for m, s in zip(mean, std, strict=True)),
        settings=settings,
    )


def _synthetic(name: str, splits, settings: dict) -> PreparedData:
    (train_x, train_y), (test_x, test_y) = splits
    return PreparedData(name, train_x, train_y, test_x, test_y, 1, (0.0,), settings)


def _cifar10(root: str, download: bool, verify: bool) -> PreparedData:
    settings = {"root": os.fspath(root), "download": download, "verify": verify}
    return _images("cifar10", sources.cifar10(root, download=download, verify=verify), settings)


def _mnist(root: str, download: bool) -> PreparedData:
    settings = {"root": os.fspath(root), "download": download}
    return _images("mnist", sources.mnist(root, download=download), settings)


def _fashion_mnist(root: str, download: bool) -> PreparedData:
    splits = sources.fashion_mnist(root, download=download)
    return _images("fashion_mnist", splits, {"root": os.fspath(root), "download": download})


def _mnist5k(n_test: int, seed: int) -> PreparedData:
    splits = sources.mnist5k(n_test=n_test, seed=seed)
    settings = {"n_test": n_test, "seed": seed}
    return _images("mnist5k", splits, settings, statistics=NORMALISATION["mnist"])


def _image_folder(**settings) -> PreparedData:
    options = {key: settings[key] for key in ("train", "test", "resize", "crop", "channels")}
    splits = sources.image_folder(settings["root"], **options)
    (train_images, train_labels), _ = splits
    statistics = (settings["mean"], settings["std"])
    if settings["mean"] is None:
        statistics = channel_statistics(train_images)
    # Labels index the training classes, each of which holds images (an empty one is refused).
    classes = int(train_labels.max()) + 1
    return _images("image_folder", splits, settings, statistics, num_classes=classes)


def _scale_detection_2d(**settings) -> PreparedData:
    return _synthetic(
        "scale_detection_2d", scale_detection.scale_detection_2d(**settings), settings
    )


def _scale_detection_1d(**settings) -> PreparedData:
    return _synthetic(
        "scale_detection_1d", scale_detection.scale_detection_1d(**settings), settings
    )


def _torchvision_shape(name: str, channels: int, size: int, n_train: int, n_test: int):
    def shape(**settings) -> DataShape:
        sources.check_available(name, settings["root"], settings["download"])
        return DataShape(2, channels, size, 10, n_train, n_test)

    return shape


def _mnist5k_shape(**settings) -> DataShape:
    sources.check_mnist5k(**settings)
    n_test = settings["n_test"]
    return DataShape(2, 1, 28, 10, sources.MNIST5K_SIZE - n_test, n_test)


def _image_folder_shape(**settings) -> DataShape:
    classes, n_train, n_test = sources.image_folder_classes(
        settings["root"], settings["train"], settings["test"]
    )
    if len(classes) < 2:
        raise ValueError(
            f"image folder {settings['root']!r} has {len(classes)} class: need 2 or more"
        )
    channels = settings["channels"]
    for key in ("mean", "std"):
        if settings[key] is not None and len(settings[key]) != channels:
            raise ValueError(
                f"{key} has {len(settings[key])} values, not one per channel ({channels})"
            )
    if (settings["mean"] is None) != (settings["std"] is None):
        raise ValueError("give both mean and std, or neither (computed from the training images)")
    resize, crop = settings["resize"], settings["crop"]
    if resize is not None and resize < crop:
        raise ValueError(
            f"crop {crop} is larger than resize {resize}: the centre crop would pad the resized "
            f"images with constant borders; set resize to {crop} or more, or leave it unset"
        )
    return DataShape(2, channels, settings["crop"], len(classes), n_train, n_test)


def _scale_detection_2d_shape(**settings) -> DataShape:
    scale_detection.check_2d(**settings)
    return DataShape(2, 1, settings["size"], 1, settings["n_train"], settings["n_test"], True)


def _scale_detection_1d_shape(**settings) -> DataShape:
    scale_detection.check_1d(**settings)
    return DataShape(1, 1, settings["length"], 1, settings["n_train"], settings["n_test"], True)


@dataclass(frozen=True)
class Source:
    """A dataset source: ``load(**settings)`` makes the data, ``shape(**settings)`` checks the
    settings and says what ``load`` will make, without making it."""

    load: Callable[..., PreparedData]
    shape: Callable[..., DataShape]


DATASETS = {
    "cifar10": Source(_cifar10, _torchvision_shape("cifar10", 3, 32, 50_000, 10_000)),
    "mnist": Source(_mnist, _torchvision_shape("mnist", 1, 28, 60_000, 10_000)),
    "fashion_mnist": Source(
        _fashion_mnist, _torchvision_shape("fashion_mnist", 1, 28, 60_000, 10_000)
    ),
    "mnist5k": Source(_mnist5k, _mnist5k_shape),
    "image_folder": Source(_image_folder, _image_folder_shape),
    "scale_detection_2d": Source(_scale_detection_2d, _scale_detection_2d_shape),
    "scale_detection_1d": Source(_scale_detection_1d, _scale_detection_1d_shape),
}


def _resolved(name: str, settings: dict) -> tuple[Source, dict]:
    """The source and its complete settings (schema defaults filled in, every value checked)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    complete = resolve(dataset_group(name), {"source": name, **settings}, where=f"dataset {name}")
    del complete["source"]
    return DATASETS[name], complete


def data_shape(name: str, **settings) -> DataShape:
    """The shape dataset ``name`` will have with ``settings``, which are checked; loads nothing."""
    source, complete = _resolved(name, settings)
    return source.shape(**complete)


def prepare(name: str, **settings) -> PreparedData:
    """Load or generate dataset ``name``; ``settings`` not given take the schema's defaults."""
    source, complete = _resolved(name, settings)
    return source.load(**complete)


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
