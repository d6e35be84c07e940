"""mnist: torchvision's reader on the standard raw IDX files (``DATA_DIR/MNIST/raw``)."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.error import URLError

import torch

from wmrbench.core.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset
from wmrbench.core.errors import WmrbenchError, first_line, setting


# IDX: a magic number (0, 0, type 0x08 = uint8, number of dimensions), the dimensions as
# big-endian int32s, then the data. MNIST's images are 3-D (N, 28, 28), its labels 1-D (N,).
IDX_UINT8 = 0x08
MNIST_CLASSES = 10


def check_idx_file(path: Path, ndim: int, what: str) -> int:
    """The number of items in an IDX file, or one line naming the file and what is wrong with it
    (a truncated download, another file under that name)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header = handle.read(4 + 4 * ndim)
    except OSError as exc:
        raise WmrbenchError(f"cannot read MNIST {what} file {path}: {exc.strerror or exc}") from None
    fix = f"delete it and pass {setting('download')}, or copy it again"
    if len(header) < 4 + 4 * ndim or header[:2] != b"\0\0" or header[2] != IDX_UINT8 or header[3] != ndim:
        raise WmrbenchError(f"MNIST {what} file {path} is corrupt: not a {ndim}-D uint8 IDX file ({size} bytes); {fix}")
    dims = [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise WmrbenchError(
            f"MNIST {what} file {path} is corrupt: {size} bytes, but its header ({' x '.join(map(str, dims))}) "
            f"needs {expected} ({'truncated' if size < expected else 'extra bytes'}); {fix}"
        )
    return dims[0]


def raw_files(data_dir: str, train: bool) -> tuple[Path, Path]:
    """Where torchvision's reader looks for a split's images and labels."""
    stem = "train" if train else "t10k"
    raw = Path(data_dir) / "MNIST" / "raw"
    return raw / f"{stem}-images-idx3-ubyte", raw / f"{stem}-labels-idx1-ubyte"


def check_raw_files(data_dir: str, train: bool) -> None:
    """When both IDX files of the split are there, they must be whole and agree on the count."""
    images, labels = raw_files(data_dir, train)
    if not (images.is_file() and labels.is_file()):
        return  # missing: torchvision's reader (and its --download) handle it
    n_images = check_idx_file(images, 3, "images")
    n_labels = check_idx_file(labels, 1, "labels")
    if n_images != n_labels:
        raise WmrbenchError(f"MNIST files disagree: {images} holds {n_images} images, {labels} {n_labels} labels")
    check_idx_labels(labels, MNIST_CLASSES)


def check_idx_labels(path: Path, classes: int) -> None:
    """Every label byte of a (whole) IDX labels file is a class, or one line naming the file and
    the first bad label (a model would otherwise be blamed for outputs that do not fit)."""
    try:
        values = path.read_bytes()[8:]  # after the magic number and the one dimension
    except OSError as exc:
        raise WmrbenchError(f"cannot read MNIST labels file {path}: {exc.strerror or exc}") from None
    bad = next((i for i, v in enumerate(values) if v >= classes), None)
    if bad is not None:
        raise WmrbenchError(
            f"MNIST labels file {path} is corrupt: label {values[bad]} of item {bad} is outside 0..{classes - 1}; "
            f"delete it and pass {setting('download')}, or copy it again"
        )


@register_dataset(DatasetInfo(DatasetName.MNIST, num_classes=MNIST_CLASSES, in_channels=1, image_size=28))
def load_mnist(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    # torchvision checks the MD5s of the archives it downloads; the unpacked IDX files have no
    # published checksums, so verify_checksums has nothing more to check here. Their structure
    # is checked (check_raw_files): a corrupt file is named, never reported as missing.
    from torchvision.datasets import MNIST

    check_raw_files(data_dir, train)
    images, labels = raw_files(data_dir, train)
    if not download and images.is_file() and labels.is_file():
        # The split's own two files, checked above: the other split's need not be there
        # (torchvision's reader wants all four, whichever split is read).
        return _read_split(images, labels)
    packed = [path for path in (images, labels) if not path.is_file() and _gz(path).is_file()]
    if packed and not download:
        raise WmrbenchError(
            f"MNIST file {packed[0]} is missing, but {_gz(packed[0])} is there: unpack the .gz files "
            f"(gunzip -k {Path(data_dir) / 'MNIST' / 'raw'}/*.gz), or pass {setting('download')}"
        )
    try:
        ds = MNIST(root=data_dir, train=train, download=download)
    except (URLError, OSError, RuntimeError) as exc:
        if download:
            raise WmrbenchError(f"could not download MNIST into {data_dir}: {first_line(exc)}") from None
        missing = [str(path) for path in (images, labels) if not path.is_file()]
        if missing:
            raise WmrbenchError(
                f"MNIST not found: {' and '.join(missing)} missing; pass {setting('data_dir')}, or {setting('download')} to fetch it"
            ) from None
        raise WmrbenchError(f"cannot read MNIST from {Path(data_dir) / 'MNIST' / 'raw'}: {first_line(exc)}") from None
    return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64))




def _gz(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def _read_split(images: Path, labels: Path) -> ImageSet:
    """One split from its two IDX files (already checked whole by :func:`check_raw_files`): the
    same uint8 images and int64 labels torchvision's reader gives."""
    image_bytes, label_bytes = images.read_bytes(), labels.read_bytes()
    n, rows, cols = (int.from_bytes(image_bytes[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    x = torch.frombuffer(bytearray(image_bytes[16:]), dtype=torch.uint8).view(n, 1, rows, cols)
    y = torch.frombuffer(bytearray(label_bytes[8:]), dtype=torch.uint8).to(torch.int64)
    return ImageSet(x.contiguous(), y)
