"""Data-set registry: one module per data set, each a pair of in-memory tensors per split.

Each data set has exactly one reader of its on-disk format: digits (scikit-learn), mnist
(torchvision's IDX reader), cifar10 (the python pickle batches, with a restricted unpickler),
cifar100 (the same reader, fine labels), tinyimagenet (the tiny-imagenet-200 folder of JPEGs). Importing this package registers them all.
"""

from wmrbench.data import cifar as _cifar  # noqa: F401  (registers the readers)
from wmrbench.data import digits as _digits  # noqa: F401
from wmrbench.data import mnist as _mnist  # noqa: F401
from wmrbench.data import tinyimagenet as _tinyimagenet  # noqa: F401
from wmrbench.data.base import DatasetInfo, DatasetSpec, ImageSet, batches, check_labels, dataset_spec, load_split

__all__ = ["DatasetInfo", "DatasetSpec", "ImageSet", "batches", "check_labels", "dataset_spec", "load_split"]
