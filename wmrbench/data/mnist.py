"""mnist: torchvision's reader on the standard raw IDX files (``DATA_DIR/MNIST/raw``)."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch

from wmrbench.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset
from wmrbench.errors import WmrbenchError, first_line


@register_dataset(DatasetInfo(DatasetName.MNIST, num_classes=10, in_channels=1, image_size=28))
def load_mnist(data_dir: str, train: bool, *, download: bool = False, verify_checksums: bool = True) -> ImageSet:
    # torchvision checks the MD5s of the archives it downloads; the unpacked IDX files have no
    # published checksums, so verify_checksums has nothing more to check here.
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(root=data_dir, train=train, download=download)
    except (URLError, OSError, RuntimeError) as exc:
        if download:
            raise WmrbenchError(f"could not download MNIST into {data_dir}: {first_line(exc)}") from None
        if not isinstance(exc, RuntimeError):
            raise
        stem = "train" if train else "t10k"
        expected = Path(data_dir) / "MNIST" / "raw" / f"{stem}-images-idx3-ubyte"
        raise WmrbenchError(
            f"MNIST not found: expected {expected} (and its labels file); pass --data-dir, or --download to fetch it"
        ) from None
    return ImageSet(ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64))


