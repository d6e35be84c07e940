"""L2 PGD (``AttackConfig(norm="l2")``) on the real robust MNIST model: the points stay in the L2
ball and [0, 1], the weighting behaves as for L-infinity, the steps match a loop written here,
the starts are what they claim, and the attack does lower the accuracy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Norm, RestartFrom, Start

L2 = AttackConfig(eps=2.0, step_size=0.5, steps=5, norm=Norm.L2)


def batch(mnist_test, n=32, offset=0):
    index = torch.arange(offset, offset + n)
    return index, mnist_test.images(index), mnist_test.y[index]


def norms(t):
    return t.flatten(1).norm(dim=1)


def reference_l2_pgd(model, x, y, eps, step_size, steps, alpha=None):
    """L2 PGD from x, written independently of wmrbench.attacks: a step of step_size along the
    gradient of sum_i s_i * CE_i divided by its L2 norm, the perturbation scaled back to norm eps
    when longer, then a clip to [0, 1]."""
    n = len(x)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        loss = F.cross_entropy(logits, y, reduction="none")
        if alpha is not None:
            p = logits.softmax(1)
            p_y = p[torch.arange(n), y]
            p_other = p.scatter(1, y[:, None], float("-inf")).max(1).values
            loss = torch.exp(-alpha * (p_y - p_other)) * loss
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        grad_norm = grad.reshape(n, -1).norm(p=2, dim=1).clamp_min(1e-12).reshape(n, 1, 1, 1)
        x_adv = x_adv.detach() + step_size * (grad / grad_norm)
        delta = x_adv - x
        delta_norm = delta.reshape(n, -1).norm(p=2, dim=1).reshape(n, 1, 1, 1)
        x_adv = torch.where(delta_norm > eps, x + delta * (eps / delta_norm), x_adv).clamp(0.0, 1.0)
    return x_adv


@pytest.mark.parametrize("alpha", [None, 2.0])
def test_l2_pgd_matches_an_independent_reference(mnist_model, mnist_test, alpha):
    index, x, y = batch(mnist_test)
    attack = AttackConfig(eps=2.0, step_size=0.4, steps=5, start=Start.ZERO, norm=Norm.L2)
    got = attacks.pgd(mnist_model, x, y, attack, alpha=alpha, index=index)
    want = reference_l2_pgd(mnist_model, x, y, 2.0, 0.4, 5, alpha)
    assert torch.equal(got.x_adv, want)
    assert (norms(got.x_adv - x) > 1.0).all()  # it did move, and far


@pytest.mark.parametrize("start", list(Start))
def test_l2_points_stay_in_the_ball_and_the_unit_box(mnist_model, mnist_test, start):
    index, x, y = batch(mnist_test, 24)
    natural = attacks.predict(mnist_model, x)
    for eps in (0.5, 2.0):
        for restart_from in RestartFrom:
            attack = AttackConfig(eps=eps, step_size=eps / 2, steps=3, restarts=2, start=start, norm=Norm.L2,
                                  restart_from=restart_from)
            result = attacks.pgd(mnist_model, x, y, attack, alpha=1.5, loss=InnerLoss.KL,
                                 natural_logits=natural, index=index)
            assert norms(result.x_adv - x).max() <= eps + 1e-5
            assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
            assert norms(result.x_adv - x).max() > 0.99 * eps  # steps of eps/2 reach the sphere


@pytest.mark.parametrize("start", list(Start))
def test_weighted_l2_pgd_alpha_zero_is_bit_identical_to_plain(mnist_model, mnist_test, start):
    index, x, y = batch(mnist_test)
    attack = AttackConfig(eps=2.0, step_size=0.5, steps=4, start=start, norm=Norm.L2)
    common = dict(index=index, seed=3)
    plain = attacks.pgd(mnist_model, x, y, attack, **common)
    for alpha in (0.0, torch.zeros(len(y))):
        weighted = attacks.pgd(mnist_model, x, y, attack, alpha=alpha, **common)
        assert torch.equal(weighted.x_adv, plain.x_adv) and torch.equal(weighted.margin, plain.margin)
    assert not torch.equal(attacks.pgd(mnist_model, x, y, attack, alpha=3.0, **common).x_adv, plain.x_adv)


def test_l2_stacked_alphas_equal_sequential_runs(mnist_model, mnist_test):
    index, x, y = batch(mnist_test, 24)
    alphas = [0.0, 1.0, 3.0]
    attack = AttackConfig(eps=2.0, step_size=0.5, steps=4, restarts=2, norm=Norm.L2)
    alpha = torch.tensor(alphas).repeat_interleave(len(y))
    stacked = attacks.pgd(mnist_model, x.repeat(3, 1, 1, 1), y.repeat(3), attack, alpha=alpha, index=index.repeat(3))
    for j, a in enumerate(alphas):
        single = attacks.pgd(mnist_model, x, y, attack, alpha=a, index=index)
        part = slice(j * len(y), (j + 1) * len(y))
        assert torch.equal(stacked.x_adv[part], single.x_adv)
        assert torch.equal(stacked.margin[part], single.margin)
        assert torch.equal(stacked.restart[part], single.restart)


def test_l2_pgd_lowers_the_accuracy_at_eps_2(mnist_model, mnist_test):
    index, x, y = batch(mnist_test, 200, offset=1000)
    clean = (attacks.predict(mnist_model, x).argmax(1) == y).float().mean().item()
    result = attacks.pgd(mnist_model, x, y, AttackConfig(eps=2.0, step_size=0.25, steps=10, norm=Norm.L2), index=index)
    robust = (result.logits.argmax(1) == y).float().mean().item()
    print(f"MNIST, 200 images: clean {clean:.3f}, L2 PGD-10 at eps 2.0 {robust:.3f}")
    assert robust <= clean - 0.02  # measured: 0.990 -> 0.955


def test_a_zero_gradient_gives_a_zero_l2_step():
    """A model blind to its input: the normalized gradient is 0/0, the step must be 0, not NaN."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    torch.nn.init.zeros_(model[1].weight)
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    for alpha in (None, 2.0):
        result = attacks.pgd(model, x, y, AttackConfig(1.0, 0.5, 3, start=Start.ZERO, norm=Norm.L2), alpha=alpha)
        assert torch.equal(result.x_adv, x)


# --- the L2 starts -----------------------------------------------------------------------------


def test_l2_uniform_start_is_uniform_in_the_ball():
    """In d = 2 (a flat 1x1x2 'image' at 0.5, eps 0.1: no clipping) a uniform point in the disk
    has P(r <= eps/2) = 1/4 and E[r] = 2/3 eps, and its direction has mean zero."""
    n, eps = 20000, 0.1
    x, index = torch.full((n, 1, 1, 2), 0.5), torch.arange(n)
    start = attacks.start_point(x, eps, Start.UNIFORM, 0, index=index, seed=0, norm=Norm.L2)
    r = norms(start - x)
    assert r.max() <= eps + 1e-6
    assert abs((r <= eps / 2).float().mean().item() - 0.25) < 0.015
    assert abs(r.mean().item() / eps - 2 / 3) < 0.01
    assert (start - x).mean(0).abs().max() < 0.002
    # Keyed: an example's start depends on its index, not its batch; restarts differ.
    part = attacks.start_point(x[:5], eps, Start.UNIFORM, 0, index=index[[7, 3, 0, 1, 2]], seed=0, norm="l2")
    assert torch.equal(part[0], start[7]) and torch.equal(part[1], start[3])
    again = attacks.start_point(x, eps, Start.UNIFORM, 1, index=index, seed=0, norm=Norm.L2)
    assert not torch.equal(again, start)


def test_l2_starts_on_mnist_stay_in_the_ball(mnist_test):
    index, x, _ = batch(mnist_test, 64)
    generator = torch.Generator().manual_seed(0)
    for start in Start:
        for source in (dict(index=index), dict(generator=generator)):
            point = attacks.start_point(x, 2.0, start, 0, norm=Norm.L2, **source)
            assert norms(point - x).max() <= 2.0 + 1e-5
            assert point.min() >= 0 and point.max() <= 1
    normal = attacks.start_point(x, 2.0, Start.NORMAL, 0, index=index, norm=Norm.L2)
    assert norms(normal - x).max() < 0.001 * 28 * 1.2  # 0.001 * N(0, I) in 784 dimensions
    uniform = attacks.start_point(x, 2.0, Start.UNIFORM, 0, index=index, norm=Norm.L2)
    assert norms(uniform - x).min() > 0.5  # far from x, though clipping to [0, 1] shortens it
