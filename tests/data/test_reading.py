"""``wmrbench.data.reading``: the one reader of examples handed over from Python, for
``wmrbench.evaluate`` and ``wmrbench.fit``."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from wmrbench.data.reading import READ_BATCH, read_examples
from wmrbench.core.errors import WmrbenchError


class Batched(Dataset):
    """A Dataset that can hand out many items at once (``__getitems__``, as a memory-mapped or
    remote store does): a reader should take them that way, not one item at a time."""

    def __init__(self, n: int) -> None:
        self.x, self.y = torch.rand(n, 1, 4, 4), torch.arange(n) % 3
        self.single, self.batched = 0, []

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        self.single += 1
        return self.x[i], int(self.y[i])

    def __getitems__(self, indices: list[int]):
        self.batched.append(len(indices))
        return [(self.x[i], int(self.y[i])) for i in indices]


def test_a_dataset_is_read_in_batches_in_order():
    data = Batched(READ_BATCH + 44)
    x, y = read_examples(data)
    assert data.single == 0 and data.batched == [READ_BATCH, 44]
    assert torch.equal(x, data.x) and torch.equal(y, data.y)


def test_a_loader_stops_once_n_examples_are_read_and_a_shuffling_one_is_warned_about():
    x, y = torch.rand(30, 1, 4, 4), torch.arange(30)
    got_x, got_y = read_examples(DataLoader(TensorDataset(x, y), batch_size=8), n_examples=10)
    assert len(got_y) == 16 and torch.equal(got_y, y[:16])  # whole batches; the caller cuts
    with pytest.warns(UserWarning, match="shuffles"):
        read_examples(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True), name="train_data")


@pytest.mark.parametrize(("data", "line"), [
    (7, "train_data must be a tensor of images, a DataLoader or a Dataset; got int"),
    ([1, 2], "train_data yields int, not (images, labels) pairs"),
    ([], "train_data yields no examples"),
    ([(torch.rand(2, 1, 4, 4), torch.rand(2))], "train_data (its labels) holds torch.float32 values"),
])
def test_bad_data_is_one_line_naming_the_argument(data, line):
    with pytest.raises(WmrbenchError) as caught:
        read_examples(data, name="train_data")
    assert str(caught.value).startswith(line) and "\n" not in str(caught.value)
