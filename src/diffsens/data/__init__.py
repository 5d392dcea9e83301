"""Datasets as in-memory tensors: real image sets through their real loaders, the synthetic
scale-detection tasks, the noisy-training transform, and a cache file per prepared dataset.

``prepare(name, **settings)`` returns a :class:`PreparedData` (normalised float32 images, labels);
``PreparedData.save`` / ``PreparedData.load`` keep it in one file so that training jobs do not
repeat the preparation.
"""

from diffsens.data.prepared import (
    DATASETS,
    DataShape,
    PreparedData,
    Source,
    data_shape,
    prepare,
    probe_set,
)
from diffsens.data.scale_detection import scale_detection_1d, scale_detection_2d
from diffsens.data.sources import (
    DatasetUnavailable,
    cifar10,
    fashion_mnist,
    image_folder,
    mnist,
    mnist5k,
)
from diffsens.data.transforms import NORMALISATION, add_noise, random_crop_flip

__all__ = [
    "DATASETS",
    "NORMALISATION",
    "DataShape",
    "DatasetUnavailable",
    "PreparedData",
    "Source",
    "add_noise",
    "cifar10",
    "data_shape",
    "fashion_mnist",
    "image_folder",
    "mnist",
    "mnist5k",
    "prepare",
    "probe_set",
    "random_crop_flip",
    "scale_detection_1d",
    "scale_detection_2d",
]
