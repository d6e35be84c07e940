"""digits: scikit-learn's bundled 8x8 digits (1,797 images), the offline default data set."""

from __future__ import annotations

import torch

from wmrbench.core.config import DatasetName
from wmrbench.data.base import DatasetInfo, ImageSet, register_dataset

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


