"""cifar10: the python pickle batches (``cifar-10-batches-py/``), read by our one restricted reader.

``download`` only fetches files; checksum checks are a separate step (``verify_checksums``) so
that files in the real format that are not the official ones (tests, subsets) can still be read.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import torch

from wmrbench.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset
from wmrbench.errors import WmrbenchError, first_line

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
CIFAR10_IMAGE_BYTES = 3 * 32 * 32  # one row of b'data': 1024 red, then 1024 green, then 1024 blue


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (a dict of lists, bytes and one numpy array), nothing else.

    The batches are pickles, and a pickle can run any code when loaded; data files are untrusted
    input (like checkpoints, DESIGN.md section 6), so only the globals that rebuild a numpy array
    are allowed. ``_codecs.encode`` is how Python 3 writes bytes at pickle protocol 2.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR-10 batch holds")
        if module.startswith("numpy") and module.endswith("multiarray"):
            # The official files name numpy.core.multiarray; numpy 2 moved it to numpy._core.
            module = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> images (N, 3, 32, 32) uint8 and labels (N,) int64.

    The official files are Python 2 pickles of a dict with keys b'batch_label', b'labels' (N
    ints), b'data' ((N, 3072) uint8, channel-major rows) and b'filenames'; ``encoding='bytes'``
    keeps Python 2 strings as bytes, as the data set's own page reads them.
    """
    try:
        with open(path, "rb") as handle:
            batch = _BatchUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise WmrbenchError(f"cannot read CIFAR-10 batch {path}: {first_line(exc)}") from None
    if not isinstance(batch, dict):
        raise WmrbenchError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    data, labels = _key(batch, "data"), _key(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR10_IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        raise WmrbenchError(f"{path} is not a CIFAR-10 batch: b'data' must be uint8 of shape (N, 3072), got {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, dtype=np.int64)  # not a list of ints: reported just below
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise WmrbenchError(f"{path} is not a CIFAR-10 batch: b'labels' must be {data.shape[0]} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _key(batch: dict[Any, Any], name: str) -> Any:
    # b'data' in the official (Python 2) files; 'data' if a batch was re-pickled from Python 3.
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    return None


def cifar10_folder(data_dir: str) -> Path:
    """``data_dir/cifar-10-batches-py``, or ``data_dir`` itself when it is that folder."""
    root = Path(data_dir)
    if not (root / CIFAR10_FOLDER).is_dir() and (root / CIFAR10_TEST_FILES[0]).is_file():
        return root
    return root / CIFAR10_FOLDER


def download_cifar10(data_dir: str) -> None:
    """Fetch and unpack torchvision's CIFAR-10 archive (its URL and MD5) into ``data_dir``.

    torchvision's ``CIFAR10(root, download=True)`` would do the same and then also unpickle the
    batches itself, with an unrestricted ``pickle.load``; our reader is the only one that reads
    them, so only the download step is borrowed.
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(CIFAR10.url, data_dir, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    except (URLError, OSError, RuntimeError) as exc:
        raise WmrbenchError(f"could not download CIFAR-10 from {CIFAR10.url}: {first_line(exc)}") from None


def _cifar10_mismatches(folder: Path, names: tuple[str, ...]) -> list[str]:
    """The batches whose MD5 differs from the one torchvision publishes for the official file."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    published = dict(CIFAR10.train_list + CIFAR10.test_list)
    return [name for name in names if not check_integrity(str(folder / name), published[name])]


def verify_cifar10(folder: Path, names: tuple[str, ...]) -> None:
    """Check each batch against the MD5 torchvision publishes for the official file."""
    mismatched = _cifar10_mismatches(folder, names)
    if mismatched:
        raise WmrbenchError(
            f"{folder / mismatched[0]} does not match the MD5 of the official CIFAR-10 file (corrupt or "
            "not the official data); fetch it again with --download, or skip the check with --no-verify-checksums"
        )


@register_dataset(DatasetInfo(DatasetName.CIFAR10, num_classes=10, in_channels=3, image_size=32))
def load_cifar10(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    names = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
    folder = cifar10_folder(data_dir)
    if download:
        present = all((folder / name).is_file() for name in names)
        if not present or (verify_checksums and _cifar10_mismatches(folder, names)):
            download_cifar10(data_dir)  # also repairs a torn earlier download or extraction
            folder = cifar10_folder(data_dir)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise WmrbenchError(
            f"CIFAR-10 not found: expected {folder / missing[0]} (the python version, cifar-10-python.tar.gz, "
            "unpacked); pass --data-dir, or --download to fetch it"
        )
    if verify_checksums:
        verify_cifar10(folder, names)
    parts = [read_cifar_batch(folder / name) for name in names]
    x = torch.from_numpy(np.concatenate([p[0] for p in parts]))  # a fresh, writable array
    y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageSet(x, y)


