"""pgd-lsa (logit-scaling PGD) and pgd-cw (margin PGD): exactness at alpha 0, the
threat model, and agreement with independent one-line references, on the real robust MNIST
model and real MNIST test images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, Start

EPS, STEP, STEPS = 0.3, 0.01, 10
PGD10 = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS)


def batch(mnist_test, n=48, offset=0):
    index = torch.arange(offset, offset + n)
    return index, mnist_test.images(index), mnist_test.y[index]


def reference_ascent(model, x, y, x_start, loss_fn, eps, step_size, steps):
    """Signed-gradient ascent on sum_i loss_fn(logits, y)_i, written independently of wmrbench."""
    x_adv = x_start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x_adv), y).sum(), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + step_size * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def cw_reference(logits, y):
    others = logits.clone()
    others[torch.arange(len(y)), y] = float("-inf")
    return others.max(1).values - logits[torch.arange(len(y)), y]


RUNS = {
    "pgd-lsa": dict(temperatures=(0.1, 10.0, 1e4)),
    "pgd-cw": {},
}


@pytest.mark.slow  # 6 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("start", [Start.UNIFORM, Start.NORMAL])
def test_alpha_zero_is_bit_identical_to_unweighted(mnist_model, mnist_test, name, start):
    index, x, y = batch(mnist_test)
    attack = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=start, restarts=2)
    run = attacks.get_attack(name).run
    common = dict(index=index, seed=1, **RUNS[name])
    plain = run(mnist_model, x, y, attack, alpha=None, **common)
    for alpha in (0.0, torch.zeros(len(y))):
        weighted = run(mnist_model, x, y, attack, alpha=alpha, **common)
        assert torch.equal(weighted.x_adv, plain.x_adv)
        assert torch.equal(weighted.logits, plain.logits)
        assert torch.equal(weighted.restart, plain.restart)
    # ... and alpha > 0 is another attack: the weight is in the graph.
    assert not torch.equal(run(mnist_model, x, y, attack, alpha=2.0, **common).x_adv, plain.x_adv)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_points_stay_in_the_ball_and_the_box(mnist_model, mnist_test, name):
    index, x, y = batch(mnist_test)
    for alpha in (None, 2.0):
        found = attacks.get_attack(name).run(mnist_model, x, y, PGD10, alpha=alpha, index=index, **RUNS[name])
        assert (found.x_adv - x).abs().max() <= EPS + 1e-6
        assert found.x_adv.min() >= 0 and found.x_adv.max() <= 1
        assert torch.equal(found.logits, attacks.predict(mnist_model, found.x_adv))


def test_lsa_at_temperature_one_is_pgd_ce(mnist_model, mnist_test):
    index, x, y = batch(mnist_test)
    for alpha in (None, 1.5):
        lsa = attacks.pgd_lsa(mnist_model, x, y, PGD10, alpha=alpha, temperatures=(1.0,), index=index, seed=2)
        pgd = attacks.pgd(mnist_model, x, y, PGD10, alpha=alpha, index=index, seed=2)
        assert torch.equal(lsa.x_adv, pgd.x_adv)


def test_lsa_follows_scaled_ce_and_keeps_the_best_temperature(mnist_model, mnist_test):
    index, x, y = batch(mnist_test)
    x_start = attacks.start_point(x, EPS, Start.UNIFORM, 0, index=index, seed=0)
    temps = (0.5, 20.0)
    per_t = [reference_ascent(mnist_model, x, y, x_start, lambda z, t, T=T: F.cross_entropy(z / T, t, reduction="none"),
                              EPS, STEP, STEPS) for T in temps]
    for T, want in zip(temps, per_t):
        got = attacks.pgd_lsa(mnist_model, x, y, PGD10, temperatures=(T,), index=index)
        assert torch.allclose(got.x_adv, want, atol=1e-6)
    both = attacks.pgd_lsa(mnist_model, x, y, PGD10, temperatures=temps, index=index)
    # Per example the restart rule picks between the two temperatures; restart says which.
    for i in range(len(y)):
        assert torch.allclose(both.x_adv[i], per_t[int(both.restart[i])][i], atol=1e-6)
    wrong = [attacks.predict(mnist_model, p).argmax(1) != y for p in per_t]
    assert torch.equal(both.logits.argmax(1) != y, wrong[0] | wrong[1])


def test_cw_follows_the_logit_margin(mnist_model, mnist_test):
    index, x, y = batch(mnist_test)
    x_start = attacks.start_point(x, EPS, Start.UNIFORM, 0, index=index, seed=0)
    want = reference_ascent(mnist_model, x, y, x_start, cw_reference, EPS, STEP, STEPS)
    got = attacks.pgd_cw(mnist_model, x, y, PGD10, index=index)
    assert torch.allclose(got.x_adv, want, atol=1e-6)
    g = torch.Generator().manual_seed(0)  # not the global stream: what ran before must not matter
    logits = torch.randn(20, 10, generator=g) * 5
    t = torch.randint(0, 10, (20,), generator=g)
    assert torch.equal(attacks.logit_margin(logits, t), cw_reference(logits, t))
    # d + (1 - d) for a correct example is 1 up to one rounding of float32
    assert (attacks.cw_loss(logits, t) >= 1 - 1e-6).all()


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_cw_is_blind_to_logit_scale_and_lsa_undoes_it(mnist_model, mnist_test):
    """The masking the audit looks for: logits x 1e4 saturate the softmax, PGD-CE's gradient is
    zero at confident points and it barely moves; the CW margin and LSA at T 1e4 see through it."""

    class Scaled(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) * 1e4

    masked = Scaled(mnist_model).eval()
    index, x, y = batch(mnist_test, n=64)
    attack = AttackConfig(eps=EPS, step_size=STEP, steps=20, start=Start.NORMAL)
    ce = attacks.pgd(masked, x, y, attack, index=index)
    cw = attacks.pgd_cw(masked, x, y, attack, index=index)
    lsa = attacks.pgd_lsa(masked, x, y, attack, temperatures=(1e4,), index=index)
    plain_cw = attacks.pgd_cw(mnist_model, x, y, attack, index=index)
    assert torch.equal(cw.x_adv, plain_cw.x_adv)  # signed steps: the scale changes nothing
    assert (ce.x_adv - x).abs().max() < 0.05  # stuck near the start: zero gradients
    acc = lambda r: (r.logits.argmax(1) == y).float().mean().item()  # noqa: E731
    assert acc(cw) < acc(ce) and acc(lsa) < acc(ce)


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("name", ["pgd-lsa", "pgd-cw"])
def test_evaluate_runs_them_by_name(digits_runs, tmp_path, name):
    """`evaluate --attack pgd-lsa|pgd-cw`: A_rob / A_sa from the attack, A_tr from its weighted form."""
    import json

    from tests.conftest import invoke

    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--attack", name, "--n-examples", "24",
                 "--steps", "3", "--alpha-test", "0,2", "--results-dir", tmp_path, "--quiet")
    assert out.exit_code == 0, out.output
    assert name.upper() in out.stdout
    # The default run name carries the attack when it is not PGD.
    summary = json.loads((tmp_path / f"trades-a2-{name}" / "summary.json").read_text())
    assert summary["config"]["method"] == name
    m = summary["metrics"]
    assert m["A_tr"]["0"] == m["A_sa"]["0"] == m["A_rob"]  # alpha 0: the weighted form is the attack itself
    assert m["A_rob"] <= m["A_nat"]
