"""wmrbench.training.selection: the held-out split carved from the training split (disjoint, complete, chosen
by the seed), the alphas logged on it, and the value best.pt maximizes, on real digits."""

from __future__ import annotations

import pytest
import torch

from wmrbench.core.config import DatasetName, Defense, SelectBy
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import DEFAULT_ALPHA_TEST, train_config
from wmrbench.training.selection import carve_validation, selected_value, validate, validation_alphas


def _keys(split) -> torch.Tensor:
    """One number per example (its pixels and label, mixed by fixed weights), sorted: two splits
    hold the same examples, each as often, when their keys are equal."""
    x = split.x.flatten(1).double()
    weights = torch.linspace(1.0, 2.0, x.shape[1], dtype=torch.float64)
    return (x @ weights + 1e6 * split.y.double()).sort().values


def test_the_held_out_split_is_disjoint_complete_and_chosen_by_the_seed(digits_test):
    train = digits_test  # any split carves the same way; this one is loaded once for many tests
    rest, held = carve_validation(train, 100, seed=0)
    assert len(held) == 100 and len(rest) == len(train) - 100
    assert torch.equal(torch.cat([_keys(rest), _keys(held)]).sort().values, _keys(train))  # each example once
    assert torch.equal(carve_validation(train, 100, seed=0)[1].x, held.x)  # the same seed, the same split
    assert not torch.equal(carve_validation(train, 100, seed=1)[1].x, held.x)
    for bad in (0, len(train)):
        with pytest.raises(WmrbenchError, match="between 1 and"):
            carve_validation(train, bad, seed=0)


def test_validation_logs_the_paper_alphas_and_selects_what_it_names(digits_model, digits_test):
    cfg = train_config(DatasetName.DIGITS, Defense.TRADES, alpha_train=2.0, steps=2, device="cpu", seed=0)
    by_tr = SelectBy("A_tr", 3.0)
    assert validation_alphas(cfg, by_tr) == (*DEFAULT_ALPHA_TEST, *[a for a in (2.0, 3.0) if a not in DEFAULT_ALPHA_TEST])
    val = digits_test.subset(40)
    digits_model.train()
    metrics = validate(digits_model, val, cfg, by_tr)
    assert digits_model.training  # the model's mode is given back
    assert metrics.n_examples == 40
    assert selected_value(metrics, SelectBy("A_rob", None)) == metrics.A_rob
    assert selected_value(metrics, by_tr) == metrics.A_tr[3.0]
    assert 0.0 <= metrics.A_rob <= metrics.A_nat <= 1.0
