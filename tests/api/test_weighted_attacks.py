"""wmrbench.WeightedPGD / WeightedAPGD: the engine's attacks behind a torchattacks-like object.

Checked against the engine itself: alpha 0 is the plain attack bit for bit, the weighted form
is the engine's weighted call, and on the real MNIST model the points are the CLI evaluation's
(``evaluate_model``, what ``wmrbench evaluate`` runs) for the same examples and seed.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import require_mnist
from wmrbench.attacks import apgd, pgd
from wmrbench.attacks.wrappers import WeightedAPGD, WeightedPGD
from wmrbench.core.attack_config import AttackConfig
from wmrbench.core.errors import WmrbenchError
from wmrbench.models import create_model


def _digits_batch(n: int = 24):
    torch.manual_seed(0)
    model = create_model("digitsnet", num_classes=10, in_channels=1)
    x = torch.rand(n, 1, 8, 8)
    y = torch.randint(0, 10, (n,))
    return model, x, y


def test_alpha_zero_is_plain_pgd_bit_for_bit():
    model, x, y = _digits_batch()
    atk = WeightedPGD(model, eps=0.3, step_size=0.05, steps=5, alpha=0.0, seed=7)
    got = atk.run(x, y)
    plain = pgd(model, x, y, AttackConfig(eps=0.3, step_size=0.05, steps=5), alpha=None,
                index=torch.arange(len(y)), seed=7)
    assert torch.equal(got.x_adv, plain.x_adv) and torch.equal(got.logits, plain.logits)
    assert torch.equal(got.margin, plain.margin)
    assert torch.equal(got.weights, torch.ones(len(y)))
    assert torch.equal(got.correct, plain.logits.argmax(1) == y)
    assert torch.equal(atk(x, y), got.x_adv)  # __call__ is run(...).x_adv, and deterministic


def test_weighted_pgd_is_the_engines_weighted_call_and_stays_in_the_ball():
    model, x, y = _digits_batch()
    atk = WeightedPGD(model, eps=0.3, step_size=0.05, steps=5, alpha=2.0, restarts=2, seed=1)
    got = atk.run(x, y)
    engine = pgd(model, x, y, AttackConfig(eps=0.3, step_size=0.05, steps=5, restarts=2), alpha=2.0,
                 index=torch.arange(len(y)), seed=1)
    assert torch.equal(got.x_adv, engine.x_adv) and torch.equal(got.restart, engine.restart)
    assert torch.allclose(got.weights, torch.exp(-2.0 * got.margin))
    assert (got.x_adv - x).abs().max() <= 0.3 + 1e-6 and got.x_adv.min() >= 0 and got.x_adv.max() <= 1
    # alpha changes the direction of the steps: some point moves.
    plain = WeightedPGD(model, eps=0.3, step_size=0.05, steps=5, alpha=0.0, restarts=2, seed=1)(x, y)
    assert not torch.equal(plain, got.x_adv)


def test_apgd_alpha_zero_is_plain_apgd_and_dlr_runs():
    model, x, y = _digits_batch()
    got = WeightedAPGD(model, eps=0.3, steps=6, alpha=0.0, seed=2).run(x, y)
    plain = apgd(model, x, y, AttackConfig(eps=0.3, step_size=0.0, steps=6), alpha=None,
                 index=torch.arange(len(y)), seed=2)
    assert torch.equal(got.x_adv, plain.x_adv) and torch.equal(got.margin, plain.margin)
    dlr = WeightedAPGD(model, eps=0.3, steps=6, alpha=1.0, loss="dlr", seed=2).run(x, y)
    assert (dlr.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert "loss='dlr'" in repr(WeightedAPGD(model, loss="dlr"))


def test_model_mode_and_parameters_are_restored():
    model, x, y = _digits_batch()
    model.train()
    WeightedPGD(model, eps=0.1, step_size=0.05, steps=2, alpha=1.0)(x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    model.eval()
    WeightedAPGD(model, eps=0.1, steps=2)(x, y)
    assert not model.training


def test_bad_inputs_are_one_line_errors_naming_python_settings():
    model, x, y = _digits_batch()
    atk = WeightedPGD(model, eps=0.1, step_size=0.05, steps=1)
    with pytest.raises(WmrbenchError, match=r"\[0, 1\]"):
        atk(x * 255, y)
    with pytest.raises(WmrbenchError, match="labels"):
        atk(x, y[:3])
    with pytest.raises(WmrbenchError, match="index must hold one id per example"):
        atk.run(x, y, index=torch.arange(3))
    with pytest.raises(WmrbenchError, match="loss must be 'ce' or 'dlr'"):
        WeightedAPGD(model, loss="cw")
    with pytest.raises(WmrbenchError):
        WeightedPGD(model, alpha=-1.0)


def test_same_points_as_the_cli_evaluation_on_real_mnist(mnist_model, mnist_test):
    """The CLI's evaluation (evaluate_model: ``wmrbench evaluate``) and the API, same examples
    and seed: A_rob's points are WeightedPGD(alpha=0)'s and A_tr(2)'s are WeightedPGD(alpha=2)'s."""
    require_mnist()
    from wmrbench.core.attack_config import Precision
    from wmrbench.core.config import DatasetName, EvalConfig
    from wmrbench.evaluation import evaluate_model

    n = 40
    cfg = EvalConfig(
        dataset=DatasetName.MNIST, attack=AttackConfig(eps=0.3, step_size=0.01, steps=10),
        alpha_test=(2.0,), n_examples=n, batch_size=n, seed=3, data_dir="", device="cpu",
        precision=Precision.FP32, results_dir="", run="t",
    )
    records = evaluate_model(mnist_model, mnist_test.subset(n), cfg, show_progress=False)
    x, y = mnist_test.images(torch.arange(n)), mnist_test.y[:n]
    rob = WeightedPGD(mnist_model, eps=0.3, step_size=0.01, steps=10, alpha=0.0, seed=3).run(x, y)
    tr = WeightedPGD(mnist_model, eps=0.3, step_size=0.01, steps=10, alpha=2.0, seed=3).run(x, y)
    assert records["pgd_margin"].tolist() == rob.margin.tolist()
    assert records["pgd_correct"].tolist() == rob.correct.tolist()
    assert records["tr_margin@2"].tolist() == tr.margin.tolist()
