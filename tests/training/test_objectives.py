"""Training objectives: baseline at alpha 0, weight gradients, detach and normalize options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wmrbench.attacks import margin
from wmrbench.models import create_model
from wmrbench.defenses.objectives import pgd_at_objective, trades_objective


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = create_model("digitsnet", 10, 1)
    x = torch.rand(32, 1, 8, 8)
    x_adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    y = torch.randint(0, 10, (32,))
    return model, x, x_adv, y


def param_grads(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_alpha_zero_is_the_unweighted_baseline(setup):
    model, x, x_adv, y = setup
    logits_adv, logits_nat = model(x_adv), model(x)
    assert torch.allclose(pgd_at_objective(logits_adv, y, alpha=0.0).loss, F.cross_entropy(logits_adv, y), rtol=1e-6)
    kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="batchmean")
    want = F.cross_entropy(logits_nat, y) + 6.0 * kl
    assert torch.allclose(trades_objective(logits_nat, logits_adv, y, alpha=0.0, beta=6.0).loss, want)


@pytest.mark.parametrize("defense", ["pgd", "trades"])
def test_weight_gradient_reaches_parameters_unless_detached(setup, defense):
    model, x, x_adv, y = setup

    def loss(detach):
        logits_adv = model(x_adv)
        if defense == "pgd":
            return pgd_at_objective(logits_adv, y, alpha=2.0, detach_weights=detach)
        return trades_objective(model(x), logits_adv, y, alpha=2.0, beta=6.0, detach_weights=detach)

    attached, detached = loss(False), loss(True)
    assert torch.equal(attached.loss, detached.loss)  # same value ...
    g_attached, g_detached = param_grads(model, attached.loss), param_grads(model, detached.loss)
    assert not torch.allclose(g_attached, g_detached)  # ... but the weight's own gradient differs
    # The difference is exactly the gradient through s: d/dtheta mean(s * l.detach()).
    logits_adv = model(x_adv)
    if defense == "pgd":
        per_example = F.cross_entropy(logits_adv, y, reduction="none").detach()
        extra = (torch.exp(-2.0 * margin(logits_adv, y)) * per_example).mean()
        assert torch.allclose(g_attached - g_detached, param_grads(model, extra), atol=1e-5)


def test_weight_gradient_reaches_the_input(setup):
    model, x, x_adv, y = setup
    x_adv = x_adv.clone().requires_grad_(True)
    attached = pgd_at_objective(model(x_adv), y, alpha=2.0)
    (g1,) = torch.autograd.grad(attached.loss, x_adv)
    detached = pgd_at_objective(model(x_adv), y, alpha=2.0, detach_weights=True)
    (g2,) = torch.autograd.grad(detached.loss, x_adv)
    assert not torch.allclose(g1, g2)


def test_normalize_weights_divides_by_the_weight_sum(setup):
    model, _, x_adv, y = setup
    logits = model(x_adv)
    out = pgd_at_objective(logits, y, alpha=1.0, normalize_weights=True)
    s = out.weights
    want = (s * F.cross_entropy(logits, y, reduction="none")).sum() / s.sum()
    assert torch.allclose(out.loss, want)
