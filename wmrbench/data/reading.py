"""Examples handed over from Python, read one way for ``wmrbench.evaluate`` and ``wmrbench.fit``:
a DataLoader or any iterable of ``(images, labels)`` batches, or a map-style Dataset of
``(image, label)`` pairs, which is read through a DataLoader (batched by its collate function,
never gathered item by item into a list).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler

from wmrbench.core.errors import WmrbenchError

READ_BATCH = 256  # how a Dataset handed over is read (it changes no result: the batches are concatenated)


def labels_of(y: Any, name: str = "y") -> Tensor:
    """``y`` as int64 class indices, or one line saying it holds something else."""
    labels = torch.as_tensor(y)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise WmrbenchError(f"{name} holds {labels.dtype} values; labels are integer class indices")
    return labels.long()


def read_examples(data: Any, n_examples: int | None = None, name: str = "data") -> tuple[Tensor, Tensor]:
    """Every (images, labels) batch of a DataLoader or iterable, or every example of a Dataset,
    in order, until ``n_examples`` are read; ``name`` is the argument's name in the messages."""
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=READ_BATCH, shuffle=False)
    elif isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler):
        warnings.warn(f"{name}: the DataLoader shuffles, so each call reads other examples in another order and "
                      "the results are not reproducible; pass shuffle=False", stacklevel=3)
    if not isinstance(data, Iterable):
        raise WmrbenchError(f"{name} must be a tensor of images, a DataLoader or a Dataset; got {type(data).__name__}")
    xs, ys, count = [], [], 0
    for batch in data:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2 or not isinstance(batch[0], Tensor):
            raise WmrbenchError(f"{name} yields {type(batch).__name__}, not (images, labels) pairs")
        xs.append(batch[0])
        ys.append(labels_of(batch[1], f"{name} (its labels)").reshape(-1))
        count += len(ys[-1])
        if n_examples is not None and count >= n_examples:
            break
    if not xs:
        raise WmrbenchError(f"{name} yields no examples")
    try:
        return torch.cat(xs), torch.cat(ys)
    except RuntimeError as exc:
        raise WmrbenchError(f"{name} yields batches that do not stack: {str(exc).splitlines()[0]}") from None
