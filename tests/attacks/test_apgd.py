"""Weighted APGD (wmrbench.attacks.apgd) on the real robust MNIST model and real MNIST test images:
agreement with pyautoattack's APGD at alpha 0, the invariants PGD also keeps, and the weighted
objective's effect."""

from __future__ import annotations

import pytest
import torch

from wmrbench import attacks
from wmrbench.attacks.apgd import ApgdLoss, _setup, checkpoints, run_from
from wmrbench.core.attack_config import AttackConfig, Norm, Precision, Start
from wmrbench.core.errors import WmrbenchError
from wmrbench.results.metrics import weighted_accuracy

APGDAttack = pytest.importorskip("pyautoattack.autopgd_base").APGDAttack

EPS = {Norm.LINF: 0.3, Norm.L2: 2.0}
THEIR_NORM = {Norm.LINF: "Linf", Norm.L2: "L2"}


def batch(mnist_test, n=16, offset=0):
    index = torch.arange(offset, offset + n)
    return index, mnist_test.images(index), mnist_test.y[index]


def config(norm=Norm.LINF, steps=10, **kw):
    return AttackConfig(eps=EPS[norm], step_size=0.01, steps=steps, norm=norm, **kw)


def theirs(model, x, y, x_start, norm, loss, n_iter):
    """pyautoattack's single APGD run from x_start: (x_best, robust flags, best loss, x_best_adv)."""
    ref = APGDAttack(model, n_iter=n_iter, norm=THEIR_NORM[norm], eps=EPS[norm], loss=loss, seed=0,
                     device=x.device)
    ref.init_hyperparam(x)
    with attacks.attack_mode(model):  # as ours runs: eval mode, input gradients only
        return ref.attack_single_run(x, y, x_init=x_start)


def ours(model, x, y, x_start, norm, loss, n_iter, alpha=None):
    setup = _setup(model, x, y, config(norm, n_iter), alpha, ApgdLoss(loss), Precision.FP32)
    with attacks.attack_mode(model):
        return run_from(setup, x_start, n_iter)


# --- agreement with pyautoattack ------------------------------------------------------------


@pytest.mark.parametrize("norm, loss, n, n_iter", [
    (Norm.LINF, "ce", 32, 100),  # AutoAttack's APGD-CE as it runs: 100 iterations
    (Norm.LINF, "dlr", 16, 30),
    (Norm.L2, "ce", 16, 30),
    (Norm.L2, "dlr", 16, 30),
])
@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_alpha_zero_agrees_with_pyautoattack_from_the_same_start(mnist_model, mnist_test, norm, loss, n, n_iter):
    """From the same start (wmrbench's keyed uniform start, fed to pyautoattack as ``x_init``), fp32,
    CPU: identical robust flags and the same best points and losses, bit for bit.

    Why bit for bit: the schedule is theirs constant for constant (checkpoints at int(0.22 n),
    windows shrinking by int(0.03 n) to int(0.06 n), rho 0.75, momentum 0.75 with a = 1 at the
    first step, the first window's comparison with zero) and the steps are written in their
    order of operations, including their L2 projection ``x + d / (||d|| + 1e-12) * min(eps, ||d||)``.
    What differs, and why it does not show here:

    * DLR: ours ascends DLR + 1 (nonnegative, so that a weight may multiply it): the same
      gradient bits, best losses equal up to rounding of the +1 (compared with 1e-6); a +1 that
      rounded two different losses to one value could change a comparison (it did not here).
    * Which misclassified point is returned: pyautoattack keeps the latest misclassified iterate,
      ours the one with the lowest margin (wmrbench's choice rule). Both are misclassified, so
      the flags agree; the points are compared where both define them (x_best).
    * Their ``perturb`` draws its own start (``x + eps * t / ||t||_inf``, t uniform; L2 on the
      sphere) from the global RNG and skips clean errors; ours uses wmrbench's keyed starts and
      attacks every example. Hence ``x_init``.
    """
    index, x, y = batch(mnist_test, n)
    x_start = attacks.start_point(x, EPS[norm], Start.UNIFORM, 0, index=index, seed=0, norm=norm)
    x_best, robust, loss_best, _ = theirs(mnist_model, x, y, x_start, norm, loss, n_iter)
    mine = ours(mnist_model, x, y, x_start, norm, loss, n_iter, alpha=0.0)
    assert torch.equal(~mine.wrong, robust)
    assert 0 < int(robust.sum()) < n  # both kinds of example are present
    assert torch.equal(mine.x_max, x_best)
    shift = 1.0 if loss == "dlr" else 0.0
    assert torch.allclose(mine.f_max - shift, loss_best, rtol=0, atol=1e-6)


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
def test_public_apgd_agrees_with_pyautoattack_from_the_zero_start(mnist_model, mnist_test):
    """Through ``attacks.apgd`` (start "zero" = x, pyautoattack's ``x_init=x``): the same robust
    flags; each robust example's returned point is their best point; each broken one is misclassified."""
    index, x, y = batch(mnist_test, 32, offset=32)
    cfg = config(Norm.LINF, 40, start=Start.ZERO)
    result = attacks.apgd(mnist_model, x, y, cfg, index=index)
    x_best, robust, _, x_best_adv = theirs(mnist_model, x, y, x, Norm.LINF, "ce", 40)
    correct = result.logits.argmax(1) == y
    assert torch.equal(correct, robust)
    assert torch.equal(result.x_adv[robust], x_best[robust])
    assert not torch.any(attacks.predict(mnist_model, x_best_adv[~robust]).argmax(1) == y[~robust])


def test_checkpoints_are_the_papers():
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), for n = 100."""
    assert checkpoints(100) == {21: 22, 40: 19, 56: 16, 69: 13, 79: 10, 86: 7, 92: 6, 98: 6}
    assert checkpoints(1) == {0: 1}
    assert checkpoints(0) == {}


def test_dlr_loss_matches_pyautoattack_and_the_formula():
    torch.manual_seed(0)
    z = (torch.randn(200, 10) * 3).requires_grad_(True)
    y = torch.randint(0, 10, (200,))
    ref = APGDAttack(lambda t: t, eps=0.3).dlr_loss
    want = ref(z, y)
    got = attacks.dlr_loss(z, y)
    assert torch.equal(got, want)
    (g_want,) = torch.autograd.grad(want.sum(), z)
    (g_got,) = torch.autograd.grad(got.sum(), z)
    assert torch.equal(g_got, g_want)
    # By hand: z = [3, 1, 0, 2], y = 1 -> -(1 - 3) / (3 - 1) = 1; y = 0 -> -(3 - 2) / (3 - 1).
    hand = attacks.dlr_loss(torch.tensor([[3.0, 1.0, 0.0, 2.0]] * 2), torch.tensor([1, 0]))
    assert hand.tolist() == pytest.approx([1.0, -0.5])
    correct = got.detach()[z.argmax(1) == y]
    assert correct.max() <= 0 and got.min() >= -1 and got.max() > 1  # > 1: z_y below z_pi3
    with pytest.raises(WmrbenchError, match="3 classes"):
        attacks.dlr_loss(torch.zeros(2, 2), torch.tensor([0, 1]))


# --- invariants ------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("norm", list(Norm))
def test_alpha_zero_is_bit_identical_to_plain(mnist_model, mnist_test, loss, norm):
    index, x, y = batch(mnist_test)
    cfg = config(norm, restarts=2)
    common = dict(index=index, seed=1, loss=loss)
    plain = attacks.apgd(mnist_model, x, y, cfg, alpha=None, **common)
    for alpha in (0.0, torch.zeros(len(y))):
        weighted = attacks.apgd(mnist_model, x, y, cfg, alpha=alpha, **common)
        for field in ("x_adv", "logits", "margin", "restart"):
            assert torch.equal(getattr(weighted, field), getattr(plain, field)), field


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("norm", list(Norm))
def test_points_stay_in_the_ball_and_the_unit_box(mnist_model, mnist_test, loss, norm):
    index, x, y = batch(mnist_test)
    for eps in (0.0, EPS[norm] / 3, EPS[norm]):
        cfg = AttackConfig(eps=eps, step_size=0.01, steps=8, norm=norm, restarts=2)
        result = attacks.apgd(mnist_model, x, y, cfg, alpha=1.5, loss=loss, index=index)
        delta = (result.x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm is Norm.LINF else delta.norm(dim=1)
        assert size.max() <= eps * (1 + 1e-6) + 1e-7
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    # The attack goes to the boundary (in L2 clipping to [0, 1] shortens the step on MNIST's
    # black background).
    assert size.max() > (0.99 if norm is Norm.LINF else 0.9) * eps
    # The returned logits and margins are those of the returned points.
    assert torch.equal(result.logits, attacks.predict(mnist_model, result.x_adv))
    assert torch.equal(result.margin, attacks.margin(result.logits, y))


def test_stacked_alphas_equal_sequential_runs(mnist_model, mnist_test):
    """One call with a per-example alpha = one call per alpha, exactly (keyed starts, per-example
    step sizes and checkpoints)."""
    index, x, y = batch(mnist_test, 12)
    alphas = [0.0, 1.0, 2.0]
    alpha = torch.tensor(alphas).repeat_interleave(len(y))
    cfg = config(steps=12)
    stacked = attacks.apgd(mnist_model, x.repeat(3, 1, 1, 1), y.repeat(3), cfg, alpha=alpha, index=index.repeat(3))
    for j, a in enumerate(alphas):
        single = attacks.apgd(mnist_model, x, y, cfg, alpha=a, index=index)
        part = slice(j * len(y), (j + 1) * len(y))
        assert torch.equal(stacked.x_adv[part], single.x_adv)
        # The same points; their final scoring in a batch of 36 rather than 12 may round the last
        # float32 bit of a logit differently (seen on this CPU's oneDNN kernels, at 1 and 2 threads).
        assert torch.allclose(stacked.margin[part], single.margin, rtol=0, atol=1e-6)


def test_alpha_changes_the_attack_and_step_size_is_ignored(mnist_model, mnist_test):
    index, x, y = batch(mnist_test)
    plain = attacks.apgd(mnist_model, x, y, config(), index=index)
    other_step = attacks.apgd(mnist_model, x, y, AttackConfig(eps=0.3, step_size=0.2, steps=10), index=index)
    assert torch.equal(plain.x_adv, other_step.x_adv)
    weighted = attacks.apgd(mnist_model, x, y, config(), alpha=2.0, index=index)
    assert not torch.equal(weighted.x_adv, plain.x_adv)


def test_restarts_follow_the_choice_rule(mnist_model, mnist_test):
    index, x, y = batch(mnist_test, 32)
    one = attacks.apgd(mnist_model, x, y, config(steps=5), index=index)
    three = attacks.apgd(mnist_model, x, y, config(steps=5, restarts=3), index=index)
    one_wrong, three_wrong = one.logits.argmax(1) != y, three.logits.argmax(1) != y
    assert torch.all(three_wrong[one_wrong]) and torch.all(three.margin[one_wrong] <= one.margin[one_wrong])
    assert torch.all(three.margin[~three_wrong] >= one.margin[~three_wrong])
    assert set(three.restart.tolist()) <= {0, 1, 2} and torch.any(three.restart > 0)


@pytest.mark.slow  # 8 s measured on a loaded 2-core CPU (tests/README.md)
def test_weighted_apgd_lowers_the_weighted_accuracy(mnist_model, mnist_test):
    """Weighted APGD at alpha 2 against plain APGD's points counted with the same weights (A_tr
    against A_sa, under APGD), on 128 real MNIST images, eps 0.3, 40 iterations.

    Not a theorem, and on this model APGD's margin is thin. Per example the two ascend different
    objectives; the weighted one finds misclassified points of lower margin (larger weight), but
    one example that only one of them breaks moves A(2) by about 1.5 points on 128 images.
    Measured (plain -> weighted A(2), %): 40 iterations, images 0-127 33.91 -> 33.44 (this
    test), 128-255 31.10 -> 29.76, 256-383 31.98 -> 33.64 (weighted breaks one fewer),
    384-511 26.34 -> 24.61; 100 iterations, images 0-127 31.95 -> 33.48 and images 0-999
    28.06 -> 28.13 (91.5% vs 91.6% robust: one example fewer broken). Weighted PGD-40 on
    images 0-127, by contrast: 51.20 -> 48.34. So this checks the direction where it held,
    not a law; a change that breaks it deserves a look at those numbers first.
    """
    index, x, y = batch(mnist_test, 128)
    cfg = config(steps=40)
    scores = {}
    for alpha in (None, 2.0):
        r = attacks.apgd(mnist_model, x, y, cfg, alpha=alpha, index=index)
        scores[alpha] = weighted_accuracy((r.logits.argmax(1) == y).numpy(), r.margin.numpy(), 2.0)
    assert scores[2.0] < scores[None]


# --- names and options ------------------------------------------------------------------------


def test_registry_and_options(mnist_model, mnist_test):
    index, x, y = batch(mnist_test, 8)
    cfg = config(steps=3)
    for name, loss in (("apgd-ce", ApgdLoss.CE), ("apgd-dlr", ApgdLoss.DLR)):
        spec = attacks.get_attack(name)
        assert spec.description
        by_name = spec.run(mnist_model, x, y, cfg, alpha=1.0, index=index)
        direct = attacks.apgd(mnist_model, x, y, cfg, alpha=1.0, loss=loss.value.upper(), index=index)
        assert torch.equal(by_name.x_adv, direct.x_adv)
    with pytest.raises(WmrbenchError, match="unknown loss 'kl'; choose one of: ce, dlr"):
        attacks.apgd(mnist_model, x, y, cfg, loss="kl")
