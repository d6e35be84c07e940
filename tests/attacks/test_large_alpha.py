"""A large alpha_test: exp(-alpha * margin) leaves float32 above alpha 40 (margins lie in [-1, 1]).

Weighted PGD steps use each example's gradient direction only, so its weight may carry any
positive per-example factor: above the bound it is computed without overflow and the attack is
the same; at or below it nothing changes, bit for bit. Weighted APGD compares the objectives
themselves, so a larger alpha is refused with one line before any work.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import assert_one_line_error, invoke
from wmrbench import attacks
from wmrbench.attacks import objective
from wmrbench.core.attack_config import STABLE_ALPHA, AttackConfig, Start
from wmrbench.core.errors import WmrbenchError


def _batch(mnist_test, n=16):
    return mnist_test.images(torch.arange(n)), mnist_test.y[:n]


def test_step_weights_are_the_importance_weights_bit_for_bit_up_to_the_bound(mnist_model, mnist_test):
    x, y = _batch(mnist_test)
    logits = mnist_model(x)
    for alpha in (0.0, 1.0, 2.0, 17.5, STABLE_ALPHA):
        assert torch.equal(objective.step_weights(logits, y, alpha), attacks.importance_weights(logits, y, alpha))
    stacked = torch.tensor([0.5, 2.0, STABLE_ALPHA, 1.0]).repeat_interleave(4)
    assert torch.equal(objective.step_weights(logits, y, stacked), attacks.importance_weights(logits, y, stacked))


def _step_direction(model, x, y, weights):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad((weights(logits, y) * F.cross_entropy(logits, y, reduction="none")).sum(), x)
    return grad.flatten(1)


def test_the_overflow_free_weight_gives_the_same_step_direction(mnist_model, mnist_test, monkeypatch):
    # In float64 at alpha 30 both forms are finite: lower the bound so that step_weights takes the
    # overflow-free form, and compare its gradient with that of exp(-alpha * margin) itself.
    model = mnist_model.double()
    x, y = _batch(mnist_test)
    x = x.double()
    alpha = 30.0
    exact = _step_direction(model, x, y, lambda z, t: attacks.importance_weights(z, t, alpha))
    monkeypatch.setattr(objective, "STABLE_ALPHA", 10.0)
    for weight_alpha in (alpha, torch.full((len(y),), alpha, dtype=torch.float64)):
        stable = _step_direction(model, x, y, lambda z, t, a=weight_alpha: objective.step_weights(z, t, a))
        assert not torch.equal(stable, exact)  # a different factor per example ...
        moving = exact.abs().amax(dim=1) > 0
        assert moving.sum() >= len(y) // 2
        # ... but the same sign (the L-infinity step) and the same unit direction (the L2 step)
        assert torch.equal(stable[moving].sign(), exact[moving].sign())
        # (by hand: F.normalize's eps floor would bend exact's rows, whose norms are ~1e-13 here)
        unit = [g[moving] / g[moving].norm(dim=1, keepdim=True) for g in (stable, exact)]
        torch.testing.assert_close(unit[0], unit[1], rtol=1e-9, atol=1e-12)


def test_weighted_pgd_at_a_huge_alpha_moves_every_example_and_stays_finite(mnist_model, mnist_test):
    # Before: exp(-1e5 * margin) was 0 for every correctly classified example (a zero gradient,
    # so PGD never moved it: no attack at all) and inf for a misclassified one.
    x, y = _batch(mnist_test)
    cfg = AttackConfig(eps=0.3, step_size=0.01, steps=10, start=Start.ZERO)
    result = attacks.pgd(mnist_model, x, y, cfg, alpha=1e5)
    assert result.x_adv.isfinite().all() and result.margin.isfinite().all()
    assert (result.x_adv - x).abs().amax() <= 0.3 + 1e-6 and result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    moved = (result.x_adv - x).flatten(1).abs().amax(dim=1)
    assert (moved > 0.05).all(), moved
    # It attacks: the weighted objective at 1e5 drives the margin down like an attack on the margin.
    clean_margin = attacks.margin(mnist_model(x), y)
    assert (result.margin < clean_margin).float().mean() > 0.9


def test_weighted_apgd_refuses_an_alpha_it_cannot_compute(mnist_model, mnist_test):
    x, y = _batch(mnist_test, 4)
    cfg = AttackConfig(eps=0.3, step_size=0.01, steps=2)
    with pytest.raises(WmrbenchError, match="overflows float32 above alpha 40"):
        attacks.apgd(mnist_model, x, y, cfg, alpha=100.0)
    with pytest.raises(WmrbenchError, match="overflows float32 above alpha 40"):
        attacks.apgd(mnist_model, x.repeat(2, 1, 1, 1), y.repeat(2), cfg, alpha=torch.tensor([1.0, 100.0]).repeat_interleave(4))


@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-dlr", "autoattack"])
def test_evaluate_refuses_a_large_alpha_for_apgd_before_any_work(attack, tmp_path, digits_runs):
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--attack", attack, "--alpha-test", "1,100",
                 "--n-examples", "8", "--results-dir", tmp_path / "results")
    assert_one_line_error(out, f"--alpha-test 100 with --attack {attack}", "use --attack pgd")
    assert not (tmp_path / "results").exists()
