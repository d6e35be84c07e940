"""The CIFAR-10 loader on files in the real "python version" format; pickles cannot run code."""

from __future__ import annotations

import pickle
import pytest
import torch

from conftest import write_cifar10_test_batch
from wmrbench.config import DatasetName
from wmrbench.data import load_split
from wmrbench.errors import WmrbenchError


def test_reads_the_test_batch(tmp_path) -> None:
    path = write_cifar10_test_batch(tmp_path, n=5, seed=3)
    batch = pickle.loads(path.read_bytes())
    split = load_split(DatasetName.CIFAR10, str(tmp_path), train=False)
    assert split.x.shape == (5, 3, 32, 32) and split.x.dtype == torch.uint8
    assert split.y.tolist() == batch[b"labels"]
    # Row-major 3072 bytes per image: 1024 red, then green, then blue (CIFAR-10's layout).
    assert torch.equal(split.x[2, 1].flatten(), torch.from_numpy(batch[b"data"][2, 1024:2048]))


def test_missing_and_hostile_files_are_one_line(tmp_path) -> None:
    with pytest.raises(WmrbenchError, match="CIFAR-10 not found: expected .*data_batch_1"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=True)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}, protocol=2))
    with pytest.raises(WmrbenchError, match="is not allowed in a CIFAR-10 batch"):
        load_split(DatasetName.CIFAR10, str(tmp_path), train=False)
    assert not marker.exists()
