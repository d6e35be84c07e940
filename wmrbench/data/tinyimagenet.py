"""tinyimagenet: the tiny-imagenet-200 folder of JPEGs, decoded once and cached as uint8."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch

from wmrbench.core.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset
from wmrbench.core.errors import WmrbenchError, first_line, setting
from wmrbench.core.io import atomic_torch_save, safe_torch_load

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
        raise WmrbenchError(f"could not download Tiny ImageNet from {TINY_URL}: {first_line(exc)}") from None


def _text(path: Path) -> str:
    """A text file of the data set, or one line naming it (binary garbage, unreadable)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WmrbenchError(f"{path} is corrupt: not a text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise WmrbenchError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_wnids(root: Path) -> list[str]:
    """The class ids, sorted: label k is the k-th folder of train/ in name order, as torchvision's
    ImageFolder numbers them, so models trained with ImageFolder pipelines score correctly."""
    path = root / "wnids.txt"
    wnids = [line.strip() for line in _text(path).splitlines() if line.strip()]
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
            f"pass {setting('data_dir')}, or {setting('download')} to fetch it"
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
    for number, line in enumerate(_text(annotations).splitlines(), start=1):
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
        raise WmrbenchError(f"cannot decode {path}: {first_line(exc)}") from None
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
        cached = safe_torch_load(path, "Tiny ImageNet cache")
    except WmrbenchError:  # a torn or foreign file is only a cache miss: decode again
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


