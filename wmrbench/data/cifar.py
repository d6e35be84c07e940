"""CIFAR-10 and CIFAR-100: the "python version" pickles, read by our one restricted reader.

* cifar10: ``cifar-10-batches-py/{data_batch_1..5,test_batch}``, labels under b'labels' (10 classes);
* cifar100: ``cifar-100-python/{train,test}``, the fine labels under b'fine_labels' (100 classes).

Both are checked against the MD5s torchvision publishes for the official files. ``download``
only fetches files; checksum checks are a separate step (``verify_checksums``) so that files in
the real format that are not the official ones (tests, subsets) can still be read.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import torch

from wmrbench.core.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset
from wmrbench.core.errors import WmrbenchError, first_line, setting

CIFAR_IMAGE_BYTES = 3 * 32 * 32  # one row of b'data': 1024 red, then 1024 green, then 1024 blue


@dataclass(frozen=True)
class CifarFormat:
    """One CIFAR data set's files; the torchvision class gives its URL and published MD5s."""

    title: str  # "CIFAR-10", for messages
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    archive: str  # the python-version archive, for messages
    torchvision_class: str

    def torchvision(self) -> Any:
        import torchvision.datasets

        return getattr(torchvision.datasets, self.torchvision_class)


CIFAR10 = CifarFormat("CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                      ("test_batch",), "labels", 10, "cifar-10-python.tar.gz", "CIFAR10")
CIFAR100 = CifarFormat("CIFAR-100", "cifar-100-python", ("train",), ("test",), "fine_labels", 100,
                       "cifar-100-python.tar.gz", "CIFAR100")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (a dict of lists, bytes and one numpy array), nothing else.

    The batches are pickles, and a pickle can run any code when loaded; data files are untrusted
    input (like checkpoints: docs/reliability.md), so only the globals that rebuild a numpy array
    are allowed. ``_codecs.encode`` is how Python 3 writes bytes at pickle protocol 2.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR batch holds")
        if module.startswith("numpy") and module.endswith("multiarray"):
            # The official files name numpy.core.multiarray; numpy 2 moved it to numpy._core.
            module = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
        return super().find_class(module, name)


def read_cifar_batch(path: Path, fmt: CifarFormat = CIFAR10) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> images (N, 3, 32, 32) uint8 and labels (N,) int64.

    The official files are Python 2 pickles of a dict with keys b'data' ((N, 3072) uint8,
    channel-major rows), the labels (N ints: b'labels' in CIFAR-10, b'fine_labels' and
    b'coarse_labels' in CIFAR-100) and more; ``encoding='bytes'`` keeps Python 2 strings as
    bytes, as the data sets' own page reads them.
    """
    what = f"{fmt.title} batch"
    try:
        with open(path, "rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise WmrbenchError(f"cannot read {what} {path}: {first_line(exc)}") from None
    if not isinstance(batch, dict):
        raise WmrbenchError(f"{path} is not a {what}: it holds a {type(batch).__name__}, not a dict")
    data, labels = _key(batch, "data"), _key(batch, fmt.label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        raise WmrbenchError(f"{path} is not a {what}: b'data' must be uint8 of shape (N, 3072), got {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, dtype=np.int64)  # not a list of ints: reported just below
    top = fmt.num_classes - 1
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > top)):
        raise WmrbenchError(f"{path} is not a {what}: b'{fmt.label_key}' must be {data.shape[0]} labels in 0..{top}")
    return data.reshape(-1, 3, 32, 32), labels


def _key(batch: dict[Any, Any], name: str) -> Any:
    # b'data' in the official (Python 2) files; 'data' if a batch was re-pickled from Python 3.
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    return None


def cifar_folder(data_dir: str, fmt: CifarFormat) -> Path:
    """``data_dir/<the data set's folder>``, or ``data_dir`` itself when it is that folder."""
    root = Path(data_dir)
    if not (root / fmt.folder).is_dir() and (root / fmt.test_files[0]).is_file():
        return root
    return root / fmt.folder


def download_cifar(data_dir: str, fmt: CifarFormat) -> None:
    """Fetch and unpack torchvision's archive of the data set (its URL and MD5) into ``data_dir``.

    torchvision's ``CIFAR10(root, download=True)`` would do the same and then also unpickle the
    batches itself, with an unrestricted ``pickle.load``; our reader is the only one that reads
    them, so only the download step is borrowed.
    """
    from torchvision.datasets.utils import download_and_extract_archive

    source = fmt.torchvision()
    try:
        download_and_extract_archive(source.url, data_dir, filename=source.filename, md5=source.tgz_md5)
    except (URLError, OSError, RuntimeError) as exc:
        raise WmrbenchError(f"could not download {fmt.title} from {source.url}: {first_line(exc)}") from None


def _mismatches(folder: Path, names: tuple[str, ...], fmt: CifarFormat) -> list[str]:
    """The files whose MD5 differs from the one torchvision publishes for the official file."""
    from torchvision.datasets.utils import check_integrity

    source = fmt.torchvision()
    published = dict(source.train_list + source.test_list)
    return [name for name in names if not check_integrity(str(folder / name), published[name])]


def verify_cifar(folder: Path, names: tuple[str, ...], fmt: CifarFormat) -> None:
    """Check each file against the MD5 torchvision publishes for the official file."""
    mismatched = _mismatches(folder, names, fmt)
    if mismatched:
        raise WmrbenchError(
            f"{folder / mismatched[0]} does not match the MD5 of the official {fmt.title} file (corrupt or "
            f"not the official data); fetch it again with {setting('download')}, or skip the check with {setting('verify_checksums', False)}"
        )


def load_cifar(data_dir: str, train: bool, fmt: CifarFormat, download: bool, verify_checksums: bool) -> ImageSet:
    names = fmt.train_files if train else fmt.test_files
    folder = cifar_folder(data_dir, fmt)
    if download:
        present = all((folder / name).is_file() for name in names)
        if not present or (verify_checksums and _mismatches(folder, names, fmt)):
            download_cifar(data_dir, fmt)  # also repairs a torn earlier download or extraction
            folder = cifar_folder(data_dir, fmt)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise WmrbenchError(
            f"{fmt.title} not found: expected {folder / missing[0]} (the python version, {fmt.archive}, "
            f"unpacked); pass {setting('data_dir')}, or {setting('download')} to fetch it"
        )
    if verify_checksums:
        verify_cifar(folder, names, fmt)
    parts = [read_cifar_batch(folder / name, fmt) for name in names]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts]))  # a fresh, writable array
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageSet(x, y)


@register_dataset(DatasetInfo(DatasetName.CIFAR10, num_classes=10, in_channels=3, image_size=32))
def load_cifar10(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    return load_cifar(data_dir, train, CIFAR10, download, verify_checksums)


@register_dataset(DatasetInfo(DatasetName.CIFAR100, num_classes=100, in_channels=3, image_size=32))
def load_cifar100(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    return load_cifar(data_dir, train, CIFAR100, download, verify_checksums)
