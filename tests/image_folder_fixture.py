"""A small folder of your own images in torchvision's ImageFolder layout (root/train/<class>/ and
root/test/<class>/), written as real PNG and JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"cat": (200, 40, 10), "dog": (10, 90, 220)}
"""Each class is one flat colour, so pixel values after any resize and crop are known."""


def write_image_folder(root: Path, n_train: int = 6, n_test: int = 3, size=(40, 50)) -> Path:
    """``n_train`` and ``n_test`` images per class of ``size`` (height, width), alternately
    PNG (exact colours) and JPEG (lossy); returns ``root``."""
    for split, n in (("train", n_train), ("test", n_test)):
        for name, colour in COLOURS.items():
            folder = Path(root) / split / name
            folder.mkdir(parents=True)
            pixels = np.broadcast_to(np.array(colour, dtype=np.uint8), (*size, 3))
            for i in range(n):
                Image.fromarray(pixels).save(folder / f"{i}.{'jpg' if i % 2 else 'png'}")
    return Path(root)
