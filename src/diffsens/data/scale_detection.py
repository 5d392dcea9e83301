"""The synthetic scale-detection tasks (docs/science.md §4): two active pixels, labelled by their
distance. Only the spatial arrangement matters, so a network can solve them by pooling space.

Labels are +1 ("close" / "same block") and -1, in balanced classes, as float32 for the hinge loss.
"""

from __future__ import annotations

import math

import torch

__all__ = ["check_1d", "check_2d", "scale_detection_1d", "scale_detection_2d"]


def _balanced(draw, label, n: int, generator: torch.Generator):
    """Rejection-sample ``n`` examples (n/2 per class) from ``draw(k) -> positions``.

    ``label(positions)`` gives +1, -1 or 0 (discarded) per example.
    """
    if n % 2:
        raise ValueError(f"sample sizes must be even to balance the classes, got {n}")
    kept = {1: [], -1: []}
    counts = {1: 0, -1: 0}
    for _ in range(1000):
        positions = draw(4 * n + 64)
        labels = label(positions)
        for cls in (1, -1):
            take = positions[labels == cls][: n // 2 - counts[cls]]
            kept[cls].append(take)
            counts[cls] += len(take)
        if counts[1] == counts[-1] == n // 2:
            break
    else:
        raise ValueError("these scale-detection settings leave one class (almost) empty")
    positions = torch.cat(kept[1] + kept[-1])
    labels = torch.cat([torch.ones(n // 2), -torch.ones(n // 2)])
    order = torch.randperm(n, generator=generator)
    return positions[order], labels[order]


def _distinct_pairs(k: int, sites: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` pairs of distinct site indices in ``[0, sites)``, ``(k, 2)``."""
    first = torch.randint(0, sites, (k,), generator=generator)
    second = (first + torch.randint(1, sites, (k,), generator=generator)) % sites
    return torch.stack([first, second], dim=1)


def scale_detection_2d(
    *,
    size: int = 28,
    xi: float = 14,
    gap: float = 2,
    n_train: int = 1024,
    n_test: int = 1024,
    seed: int = 0,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Two active pixels of value size^2 / 2 in a ``size x size`` image.

    Label +1 if their Euclidean distance is below ``xi - gap/2``, -1 if at least ``xi + gap/2``;
    pairs in between are discarded. Returns ``((train_x, train_y), (test_x, test_y))`` with images
    ``(N, 1, size, size)``.
    """
    check_2d(size=size, xi=xi, gap=gap, n_train=n_train, n_test=n_test)
    generator = torch.Generator().manual_seed(seed)

    def label(pairs):
        y, x = pairs // size, pairs % size
        distance = torch.hypot((y[:, 0] - y[:, 1]).float(), (x[:, 0] - x[:, 1]).float())
        return torch.where(distance < xi - gap / 2, 1, torch.where(distance >= xi + gap / 2, -1, 0))

    def images(pairs):
        flat = torch.zeros(len(pairs), size * size)
        flat.scatter_(1, pairs, size**2 / 2)
        return flat.view(-1, 1, size, size)

    return _split(
        lambda k: _distinct_pairs(k, size * size, generator),
        label,
        images,
        n_train,
        n_test,
        generator,
    )


def scale_detection_1d(
    *,
    length: int = 128,
    xi: int = 32,
    gap: float = 0,
    task: int = 2,
    n_train: int = 1024,
    n_test: int = 1024,
    seed: int = 0,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Two active pixels of value sqrt(length / 2) in a signal of ``length``, ``(N, 1, length)``.

    * ``task=2`` (the paper's): +1 iff both pixels lie in the same block of length ``xi``.
    * ``task=1``: +1 if their periodic distance is below ``xi - gap/2``, -1 if at least
      ``xi + gap/2`` (the 1-D analogue of the 2-D task).
    """
    check_1d(length=length, xi=xi, gap=gap, task=task, n_train=n_train, n_test=n_test)
    generator = torch.Generator().manual_seed(seed)

    def label(pairs):
        if task == 2:
            same = pairs[:, 0] // xi == pairs[:, 1] // xi
            return torch.where(same, 1, -1)
        d = (pairs[:, 0] - pairs[:, 1]).abs()
        d = torch.minimum(d, length - d)
        return torch.where(d < xi - gap / 2, 1, torch.where(d >= xi + gap / 2, -1, 0))

    def signals(pairs):
        flat = torch.zeros(len(pairs), length)
        flat.scatter_(1, pairs, math.sqrt(length / 2))
        return flat.view(-1, 1, length)

    return _split(
        lambda k: _distinct_pairs(k, length, generator), label, signals, n_train, n_test, generator
    )


def _split(draw, label, render, n_train, n_test, generator):
    positions, labels = _balanced(draw, label, n_train + n_test, generator)
    # each split takes half of its examples from each class
    x = render(positions)
    train = torch.cat([torch.nonzero(labels == c).flatten()[: n_train // 2] for c in (1, -1)])
    test = torch.cat([torch.nonzero(labels == c).flatten()[n_train // 2 :] for c in (1, -1)])
    train = train[torch.randperm(len(train), generator=generator)]
    test = test[torch.randperm(len(test), generator=generator)]
    return (x[train], labels[train]), (x[test], labels[test])


def check_2d(*, size, xi, gap, n_train, n_test, **_) -> None:
    """Refuse settings :func:`scale_detection_2d` cannot honour, before generating anything."""
    _check(size=size, xi=xi, n_train=n_train, n_test=n_test)
    if not 0 <= gap < 2 * xi:
        raise ValueError(f"gap must be in [0, 2 xi) = [0, {2 * xi}), got {gap}")
    _check_classes(xi, gap, largest=math.sqrt(2) * (size - 1), what=f"a {size} x {size} image")


def check_1d(*, length, xi, gap, task, n_train, n_test, **_) -> None:
    """Refuse settings :func:`scale_detection_1d` cannot honour, before generating anything."""
    _check(size=length, xi=xi, n_train=n_train, n_test=n_test)
    if task not in (1, 2):
        raise ValueError(f"task must be 1 (distance) or 2 (same block), got {task!r}")
    if task == 2 and length % xi:
        raise ValueError(f"task 2 needs length to be a multiple of xi, got {length} and {xi}")
    if task == 2 and not 2 <= xi <= length // 2:
        raise ValueError(
            f"task 2 needs blocks of at least 2 sites and at least 2 blocks: 2 <= xi <= "
            f"length / 2 = {length // 2}, got xi = {xi}"
        )
    if task == 1:  # periodic distances run from 1 to length // 2
        _check_classes(xi, gap, largest=length // 2, what=f"a ring of {length} sites")


def _check_classes(xi, gap, *, largest, what) -> None:
    """Both classes must be possible: some pair closer than xi - gap/2 (the closest pairs are
    1 apart), some at least xi + gap/2 apart (the farthest are ``largest`` apart)."""
    if not 1 < xi - gap / 2:
        raise ValueError(f"no pair is closer than xi - gap/2 = {xi - gap / 2}: it must exceed 1")
    if not xi + gap / 2 <= largest:
        raise ValueError(
            f"no pair in {what} is xi + gap/2 = {xi + gap / 2} apart or more (at most "
            f"{largest:.3g}): lower xi or gap"
        )


def _check(*, size, xi, n_train, n_test):
    if size < 2:
        raise ValueError(f"the input size must be at least 2, got {size}")
    if not xi > 0:
        raise ValueError(f"xi must be > 0, got {xi}")
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n < 2 or n % 2:
            raise ValueError(f"{name} must be a positive even number (balanced classes), got {n}")
