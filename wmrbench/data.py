"""Data-set registry: each data set is a pair of in-memory tensors per split.

Images are kept as uint8 (scaled by 1/255 when a batch is taken) or float32 in [0, 1], NCHW.
A split is small enough to sit on the training device whole (CIFAR-10's training set is 150 MB
as uint8, Tiny ImageNet's 1.2 GB), so batches are index gathers on the device, augmentation runs
there too (wmrbench/augment.py), and the GPU never waits for a CPU data loader (the airbench
pattern).

Each data set has exactly one reader of its on-disk format: digits (scikit-learn), mnist
(torchvision's IDX reader), cifar10 (the python pickle batches, with a restricted unpickler),
tinyimagenet (the tiny-imagenet-200 folder of JPEGs). ``download`` only fetches files; checksum
checks are a separate step (``verify_checksums``) so that files in the real format that are not
the official ones (tests, subsets) can still be read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.error import URLError

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


class Loader(Protocol):
    """Read one split from ``data_dir``; ``download`` fetches missing files first (needs the
    internet), ``verify_checksums`` checks files against published checksums where they exist."""

    def __call__(self, data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet: ...


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


def load_split(
    name: DatasetName, data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True
) -> ImageSet:
    """One split of a registered data set, read from ``data_dir`` (see :class:`Loader`)."""
    return dataset_spec(name).load(data_dir, train, download=download, verify_checksums=verify_checksums)


# --- digits: scikit-learn's bundled 8x8 digits, the offline default ------------------------------

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the split is part of the data set's definition, not of a run


@register_dataset(DatasetInfo(DatasetName.DIGITS, num_classes=10, in_channels=1, image_size=8))
def load_digits(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    # Bundled with scikit-learn: nothing to download or verify.
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
def load_mnist(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    # torchvision checks the MD5s of the archives it downloads; the unpacked IDX files have no
    # published checksums, so verify_checksums has nothing more to check here.
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(root=data_dir, train=train, download=download)
    except (URLError, OSError, RuntimeError) as exc:
        if download:
            raise WmrbenchError(f"could not download MNIST into {data_dir}: {_first_line(exc)}") from None
        if not isinstance(exc, RuntimeError):
            raise
        stem = "train" if train else "t10k"
        expected = Path(data_dir) / "MNIST" / "raw" / f"{stem}-images-idx3-ubyte"
        raise WmrbenchError(
            f"MNIST not found: expected {expected} (and its labels file); pass --data-dir, or --download to fetch it"
        ) from None
    return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64))


# --- cifar10: the python pickle batches, read by our one (restricted) reader ----------------------

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
        raise WmrbenchError(f"cannot read CIFAR-10 batch {path}: {_first_line(exc)}") from None
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
        raise WmrbenchError(f"could not download CIFAR-10 from {CIFAR10.url}: {_first_line(exc)}") from None


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


# --- tinyimagenet: the tiny-imagenet-200 folder of JPEGs, decoded once and cached ----------------

TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_ZIP_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_CLASSES = 200
TINY_SIZE = 64
TINY_CACHE_FORMAT = "wmrbench-tinyimagenet-cache-v1"
_JPEG_SUFFIXES = (".jpeg", ".jpg")


def tiny_imagenet_root(data_dir: str) -> Path:
    """``data_dir/tiny-imagenet-200``, or ``data_dir`` itself when it holds ``wnids.txt``."""
    root = Path(data_dir)
    if not (root / TINY_FOLDER / "wnids.txt").is_file() and (root / "wnids.txt").is_file():
        return root
    return root / TINY_FOLDER


def download_tiny_imagenet(data_dir: str) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(TINY_URL, data_dir, md5=TINY_ZIP_MD5)
    except (URLError, OSError, RuntimeError) as exc:
        raise WmrbenchError(f"could not download Tiny ImageNet from {TINY_URL}: {_first_line(exc)}") from None


def read_wnids(root: Path) -> list[str]:
    """The class ids, sorted: label k is the k-th folder of train/ in name order, as torchvision's
    ImageFolder numbers them, so models trained with ImageFolder pipelines score correctly."""
    path = root / "wnids.txt"
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not wnids or len(wnids) > TINY_CLASSES or len(set(wnids)) != len(wnids):
        raise WmrbenchError(f"{path} must list up to {TINY_CLASSES} distinct class ids, one per line; it lists {len(wnids)}")
    return sorted(wnids)


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _JPEG_SUFFIXES)


def tiny_imagenet_files(root: Path, train: bool) -> tuple[list[Path], list[int]]:
    """The split's image files and labels, or one line saying what is missing."""
    if not (root / "wnids.txt").is_file():
        raise WmrbenchError(
            f"Tiny ImageNet not found: expected {root / 'wnids.txt'} (tiny-imagenet-200.zip unpacked); "
            "pass --data-dir, or --download to fetch it"
        )
    wnids = read_wnids(root)
    label_of = {wnid: k for k, wnid in enumerate(wnids)}
    files: list[Path] = []
    labels: list[int] = []
    if train:
        missing = [w for w in wnids if not (root / "train" / w / "images").is_dir()]
        if missing:
            more = f" (and {len(missing) - 1} more classes)" if len(missing) > 1 else ""
            raise WmrbenchError(f"Tiny ImageNet is incomplete: {root / 'train' / missing[0] / 'images'} is missing{more}")
        for wnid in wnids:
            found = _jpegs(root / "train" / wnid / "images")
            if not found:
                raise WmrbenchError(f"Tiny ImageNet is incomplete: {root / 'train' / wnid / 'images'} holds no JPEG")
            files += found
            labels += [label_of[wnid]] * len(found)
        return files, labels
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise WmrbenchError(f"Tiny ImageNet is incomplete: {annotations} is missing (the labels of val/images)")
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in label_of:
            raise WmrbenchError(f"{annotations} line {number} is not 'FILE<TAB>WNID<TAB>...' with a class from wnids.txt")
        path = root / "val" / "images" / fields[0].strip()
        if not path.is_file():
            raise WmrbenchError(f"Tiny ImageNet is incomplete: {path} (listed in {annotations.name}) is missing")
        files.append(path)
        labels.append(label_of[fields[1].strip()])
    if not files:
        raise WmrbenchError(f"{annotations} lists no images")
    return files, labels


def _decode_jpeg(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))  # a few Tiny ImageNet images are grayscale
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise WmrbenchError(f"cannot decode {path}: {_first_line(exc)}") from None
    if pixels.shape != (TINY_SIZE, TINY_SIZE, 3):
        raise WmrbenchError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}; Tiny ImageNet images are {TINY_SIZE}x{TINY_SIZE}")
    return pixels


def _fingerprint(root: Path, files: list[Path], labels: list[int]) -> str:
    """Names, sizes, modification times and labels of the split's files: any change shows."""
    digest = hashlib.sha256()
    for path, label in zip(files, labels):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\t{label}\n".encode())
    return digest.hexdigest()


def tiny_imagenet_cache_path(root: Path, train: bool) -> Path:
    return root / ".wmrbench-cache" / f"{'train' if train else 'val'}-uint8.pt"


def _read_cache(path: Path, fingerprint: str) -> ImageSet | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file is only a cache miss: decode again
        return None
    if not isinstance(cached, dict) or cached.get("format") != TINY_CACHE_FORMAT or cached.get("fingerprint") != fingerprint:
        return None
    return ImageSet(cached["x"], cached["y"])


@register_dataset(DatasetInfo(DatasetName.TINYIMAGENET, num_classes=TINY_CLASSES, in_channels=3, image_size=TINY_SIZE))
def load_tiny_imagenet(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    """Decoding 110,000 JPEGs takes a while, so the decoded uint8 tensors are cached next to the
    data (``.wmrbench-cache/``, written atomically, read with weights_only=True) and reused while
    the files' names, sizes and times are unchanged. The unpacked files have no published
    checksums (only the zip does, checked on download), so verify_checksums has nothing to check.
    """
    from wmrbench.io import atomic_torch_save

    root = tiny_imagenet_root(data_dir)
    try:
        files, labels = tiny_imagenet_files(root, train)
    except WmrbenchError:
        if not download:
            raise
        download_tiny_imagenet(data_dir)  # absent, or torn by an earlier download or extraction
        root = tiny_imagenet_root(data_dir)
        files, labels = tiny_imagenet_files(root, train)
    fingerprint = _fingerprint(root, files, labels)
    cache = tiny_imagenet_cache_path(root, train)
    cached = _read_cache(cache, fingerprint)
    if cached is not None:
        return cached
    # Decoded straight into one preallocated NCHW array (1.2 GB for the training split, no
    # second copy); PIL releases the GIL while decoding, so threads decode in parallel.
    x = np.empty((len(files), 3, TINY_SIZE, TINY_SIZE), dtype=np.uint8)

    def decode_into(i: int) -> None:
        x[i] = _decode_jpeg(files[i]).transpose(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        for _ in pool.map(decode_into, range(len(files))):
            pass  # re-raises the first decoding error
    data = ImageSet(torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64))
    try:
        atomic_torch_save(cache, {"format": TINY_CACHE_FORMAT, "fingerprint": fingerprint, "x": data.x, "y": data.y})
    except OSError:
        pass  # a read-only data folder: no cache, decode again next time
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
