"""Data-set registry: each data set is a pair of in-memory tensors per split.

Images are kept as uint8 (scaled by 1/255 when a batch is taken) or float32 in [0, 1], NCHW.
A split is small enough to sit on the training device whole, so batches are index gathers on
the device and the GPU never waits for a CPU data loader (the airbench pattern).
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from wmrbench.config import DatasetName
from wmrbench.errors import WmrbenchError


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


Loader = Callable[[str, bool], ImageSet]  # (data_dir, train) -> split


@dataclass(frozen=True)
class DatasetSpec:
    info: DatasetInfo
    load: Loader


_DATASETS: dict[DatasetName, DatasetSpec] = {}


def register_dataset(info: DatasetInfo) -> Callable[[Loader], Loader]:
    def decorator(load: Loader) -> Loader:
        _DATASETS[info.name] = DatasetSpec(info, load)
        return load

    return decorator


def dataset_spec(name: DatasetName) -> DatasetSpec:
    try:
        return _DATASETS[name]
    except KeyError:
        known = ", ".join(n.value for n in _DATASETS)
        raise WmrbenchError(f"dataset {name.value!r} has no loader yet; available: {known}") from None


def load_split(name: DatasetName, data_dir: str, train: bool) -> ImageSet:
    return dataset_spec(name).load(data_dir, train)


# --- digits: scikit-learn's bundled 8x8 digits, the offline default ------------------------------

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the split is part of the data set's definition, not of a run


@register_dataset(DatasetInfo(DatasetName.DIGITS, num_classes=10, in_channels=1, image_size=8))
def load_digits(data_dir: str, train: bool) -> ImageSet:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # pixels are 0..16
    y = torch.tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(), test_size=DIGITS_TEST_FRACTION,
        random_state=DIGITS_SPLIT_SEED, stratify=y.numpy(),
    )
    idx = torch.as_tensor(train_idx if train else test_idx)
    return ImageSet(x[idx].contiguous(), y[idx].contiguous())


# --- mnist: torchvision's reader on the standard raw files ---------------------------------------


@register_dataset(DatasetInfo(DatasetName.MNIST, num_classes=10, in_channels=1, image_size=28))
def load_mnist(data_dir: str, train: bool) -> ImageSet:
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(root=data_dir, train=train, download=False)
    except RuntimeError:
        stem = "train" if train else "t10k"
        expected = Path(data_dir) / "MNIST" / "raw" / f"{stem}-images-idx3-ubyte"
        raise WmrbenchError(
            f"MNIST not found: expected {expected} (and its labels file); pass --data-dir"
        ) from None
    return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64))


# --- cifar10: the CIFAR-10 "python version" batches ---------------------------------------------

CIFAR10_FOLDER = "cifar-10-batches-py"  # the layout torchvision.datasets.CIFAR10 downloads


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR-10's batches are pickles: allow numpy arrays and nothing else (no code runs)."""

    def find_class(self, module: str, name: str) -> object:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np.ndarray(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy keeps it
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


@register_dataset(DatasetInfo(DatasetName.CIFAR10, num_classes=10, in_channels=3, image_size=32))
def load_cifar10(data_dir: str, train: bool) -> ImageSet:
    folder = Path(data_dir) / CIFAR10_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as handle:
                batch = _ArrayUnpickler(handle, encoding="bytes").load()
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except FileNotFoundError:
            raise WmrbenchError(f"CIFAR-10 not found: expected {path} (the python version); pass --data-dir") from None
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
            raise WmrbenchError(f"cannot read CIFAR-10 batch {path}: {exc}") from None
    return ImageSet(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))


# --- batching ------------------------------------------------------------------------------------


def batches(data: ImageSet, batch_size: int, order: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(index, x, y)`` batches; ``order`` (a permutation) shuffles, None keeps data order.

    ``index`` holds each example's position in ``data``: evaluation keys random starts on it.
    """
    device = data.y.device
    n = len(data)
    order = torch.arange(n, device=device) if order is None else order.to(device)
    for lo in range(0, n, batch_size):
        index = order[lo : lo + batch_size]
        yield index, data.images(index), data.y[index]
