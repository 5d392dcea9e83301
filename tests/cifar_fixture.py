"""A small CIFAR-10 in the real on-disk layout (cifar-10-batches-py: python pickles of uint8
rows and labels, and the meta file), read by torchvision's real loader.

torchvision checks each file's MD5 against the sums of the real dataset, which a generated file
cannot match: configs read the fixture with `verify: false`, and a test checks that the
verifying reader refuses it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar_fixture(root: Path, n_per_batch: int = 6, seed: int = 0) -> dict:
    """Five training batches and a test batch of ``n_per_batch`` random images each, under
    ``root/cifar-10-batches-py``; returns ``{batch name: (rows, labels)}``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return batches
