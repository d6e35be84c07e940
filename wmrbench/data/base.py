"""What every data set shares: a split as in-memory tensors (``ImageSet``), the registry of
readers by name, and batching.

Images are kept as uint8 (scaled by 1/255 when a batch is taken) or float32 in [0, 1], NCHW.
A split is small enough to sit on the training device whole (CIFAR-10's training set is 150 MB
as uint8, Tiny ImageNet's 1.2 GB), so batches are index gathers on the device, augmentation runs
there too (:mod:`wmrbench.data.augment`), and the GPU never waits for a CPU data loader (the
airbench pattern).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from wmrbench.core.config import DatasetName
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    name: DatasetName
    num_classes: int
    in_channels: int
    image_size: int


@dataclass
class ImageSet:
    """One split: images ``x`` (uint8 or float32, NCHW) and int64 labels ``y``."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} images but {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.x.to(device), self.y.to(device))

    def subset(self, n: int | None) -> ImageSet:
        """The first n examples (all when n is None), as RobustBench's n_examples does."""
        if n is None or n >= len(self):
            return self
        return ImageSet(self.x[:n], self.y[:n])

    def images(self, index: Tensor) -> Tensor:
        """Float32 images in [0, 1] for the given indices (on the split's device)."""
        x = self.x[index]
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class Loader(Protocol):
    """Read one split from ``data_dir``; ``download`` fetches missing files first (needs the
    internet), ``verify_checksums`` checks files against published checksums where they exist."""

    def __call__(self, data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet: ...


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo
    load: Loader


_DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(info: DatasetInfo) -> Callable[[Loader], Loader]:
    def decorator(load: Loader) -> Loader:
        _DATASETS.add(info.name.value, DatasetSpec(info, load))
        return load

    return decorator


def dataset_spec(name: DatasetName | str) -> DatasetSpec:
    """The registered data set ``name``, or one line listing the choices."""
    return _DATASETS.get(name.value if isinstance(name, DatasetName) else name)


def load_split(
    name: DatasetName, data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True
) -> ImageSet:
    """One split of a registered data set, read from ``data_dir`` (see :class:`Loader`).

    Every loader's labels are checked here against the data set's classes, whatever the loader
    checked itself: a label outside 0..C-1 is a corrupt file, and is said so in one line, never
    reported later as a model whose outputs do not fit (nor as an index error in the loss)."""
    spec = dataset_spec(name)
    data = spec.load(data_dir, train, download=download, verify_checksums=verify_checksums)
    check_labels(data.y, spec.info.num_classes,
                 f"the {'training' if train else 'test'} split of {spec.info.name.value} in {data_dir or 'its folder'}")
    return data


def check_labels(y: Tensor, classes: int, where: str) -> None:
    """Integer labels in 0..classes-1, or one line naming ``where`` and the first bad one."""
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dim() != 1:
        raise WmrbenchError(f"{where} is corrupt: its labels are {y.dtype} of shape {tuple(y.shape)}, not one integer per example")
    bad = ((y < 0) | (y >= classes)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise WmrbenchError(f"{where} is corrupt: label {int(y[i])} of example {i} is outside 0..{classes - 1} "
                            f"({len(bad)} such labels)")


# --- batching ------------------------------------------------------------------------------------


def batches(data: ImageSet, batch_size: int, order: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(index, x, y)`` batches; ``order`` (a permutation) shuffles, None keeps data order.

    ``order`` may also be part of the indices (one process's shard): only those are visited.
    ``index`` holds each example's position in ``data``: evaluation keys random starts on it.
    """
    device = data.y.device
    order = torch.arange(len(data), device=device) if order is None else order.to(device)
    for lo in range(0, order.numel(), batch_size):
        index = order[lo : lo + batch_size]
        yield index, data.images(index), data.y[index]
