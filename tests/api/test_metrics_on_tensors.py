"""The public metric functions take torch tensors as they take numpy arrays, with the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wmrbench.results.metrics import accuracy, normalized_weights, weighted_accuracy


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0, 80.0])
def test_tensor_and_numpy_give_the_same_bits(alpha):
    g = torch.Generator().manual_seed(0)
    margin = torch.rand(501, generator=g) * 2 - 1  # float32, as the attacks return it
    correct = margin > 0.1
    assert accuracy(correct) == accuracy(correct.numpy())
    assert weighted_accuracy(correct, margin, alpha) == weighted_accuracy(correct.numpy(), margin.numpy(), alpha)
    assert np.array_equal(normalized_weights(margin, alpha), normalized_weights(margin.numpy(), alpha))
    # gradients attached, int 0/1 labels of correctness, a list: the same numbers
    with_grad = margin.clone().requires_grad_(True)
    assert weighted_accuracy(correct.int(), with_grad, alpha) == weighted_accuracy(correct.tolist(), margin.tolist(), alpha)


def test_values_by_hand_and_alpha_zero_is_plain_accuracy():
    correct = torch.tensor([True, False, True])
    margin = torch.tensor([0.5, -0.2, 0.1])
    s = np.exp(-2.0 * np.array([0.5, -0.2, 0.1], dtype=np.float32).astype(np.float64))
    assert weighted_accuracy(correct, margin, 2.0) == pytest.approx(100 * (s[0] + s[2]) / s.sum(), rel=1e-12)
    assert weighted_accuracy(correct, margin, 0.0) == 100.0 * (2 / 3)  # as tests/results/test_metrics.py by hand
    assert accuracy(correct) == pytest.approx(100.0 * 2 / 3, rel=1e-15)
    assert isinstance(normalized_weights(margin, 1.0), np.ndarray)


def test_bfloat16_margins_are_read_exactly():
    margin = torch.tensor([0.5, -0.25, 0.125], dtype=torch.bfloat16)
    assert np.array_equal(normalized_weights(margin, 1.0), normalized_weights(np.array([0.5, -0.25, 0.125]), 1.0))
