"""The attack engine's (wmrbench.attacks) invariants, on the real robust MNIST model and real MNIST
test images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wmrbench import attacks
from wmrbench.attacks import AttackResult, choose_among
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Start
from wmrbench.core.errors import WmrbenchError

EPS, STEP, STEPS = 0.3, 0.01, 10
PGD10 = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS)


def batch(mnist_test, n=64, offset=0):
    index = torch.arange(offset, offset + n)
    return index, mnist_test.images(index), mnist_test.y[index]


def reference_pgd(model, x, y, x_start, eps, step_size, steps):
    """Plain PGD written independently of wmrbench.attacks: maximise sum_i CE_i with signed steps."""
    model.eval()
    x_adv = x_start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_margin_range_and_sign():
    torch.manual_seed(0)
    logits = torch.randn(2000, 10) * 4
    y = torch.randint(0, 10, (2000,))
    m = attacks.margin(logits, y)
    assert m.min() >= -1 and m.max() <= 1
    correct = logits.argmax(1) == y
    assert torch.equal(m > 0, correct)  # continuous logits: no ties
    assert torch.equal(m < 0, ~correct)
    # By hand for one example: p = softmax([2, 0, 1]), y = 2 -> p_2 - p_0.
    p = torch.softmax(torch.tensor([2.0, 0.0, 1.0]), 0)
    assert attacks.margin(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([2])).item() == pytest.approx((p[2] - p[0]).item())


def test_importance_weights():
    logits = torch.randn(50, 10)
    y = torch.randint(0, 10, (50,))
    assert torch.equal(attacks.importance_weights(logits, y, 0.0), torch.ones(50))
    s = attacks.importance_weights(logits, y, 2.0)
    assert torch.allclose(s, torch.exp(-2.0 * attacks.margin(logits, y)))
    per_example = attacks.importance_weights(logits, y, torch.full((50,), 2.0))
    assert torch.equal(per_example, s)


def test_plain_pgd_matches_independent_reference(mnist_model, mnist_test):
    index, x, y = batch(mnist_test)
    got = attacks.pgd(mnist_model, x, y, PGD10, index=index, seed=3)
    x_start = attacks.start_point(x, EPS, Start.UNIFORM, 0, index=index, seed=3)
    want = reference_pgd(mnist_model, x, y, x_start, EPS, STEP, STEPS)
    assert torch.allclose(got.x_adv, want, atol=1e-6)


@pytest.mark.parametrize("start", list(Start))
def test_weighted_pgd_alpha_zero_is_bit_identical_to_plain(mnist_model, mnist_test, start):
    index, x, y = batch(mnist_test)
    attack = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=start)
    common = dict(index=index, seed=1)
    plain = attacks.pgd(mnist_model, x, y, attack, alpha=None, **common)
    scalar = attacks.pgd(mnist_model, x, y, attack, alpha=0.0, **common)
    tensor = attacks.pgd(mnist_model, x, y, attack, alpha=torch.zeros(len(y)), **common)
    for weighted in (scalar, tensor):
        assert torch.equal(weighted.x_adv, plain.x_adv)
        assert torch.equal(weighted.logits, plain.logits)
        assert torch.equal(weighted.margin, plain.margin)


def test_alpha_changes_the_attack(mnist_model, mnist_test):
    """The weight is in the graph: with alpha > 0 the signed steps go elsewhere."""
    index, x, y = batch(mnist_test)
    common = dict(index=index, seed=1)
    plain = attacks.pgd(mnist_model, x, y, PGD10, **common)
    weighted = attacks.pgd(mnist_model, x, y, PGD10, alpha=2.0, **common)
    assert not torch.equal(weighted.x_adv, plain.x_adv)


@pytest.mark.parametrize("start", list(Start))
@pytest.mark.parametrize("loss", list(InnerLoss))
def test_x_adv_stays_in_the_eps_ball_and_unit_box(mnist_model, mnist_test, start, loss):
    index, x, y = batch(mnist_test, 32)
    natural = attacks.predict(mnist_model, x)
    for eps in (0.0, 0.05, 0.3):
        result = attacks.pgd(
            mnist_model, x, y, AttackConfig(eps=eps, step_size=0.1, steps=5, start=start), alpha=1.5,
            loss=loss, natural_logits=natural, index=index,
        )
        assert (result.x_adv - x).abs().max() <= eps + 1e-6
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert (result.x_adv - x).abs().max() > 0.29  # the attack does move to the boundary


def test_stacked_alphas_equal_sequential_runs(mnist_model, mnist_test):
    """One call with a per-example alpha = one call per alpha, exactly (keyed starts)."""
    index, x, y = batch(mnist_test, 40)
    alphas = [0.0, 1.0, 2.0]
    common = dict(seed=5)
    alpha = torch.tensor(alphas).repeat_interleave(len(y))
    stacked = attacks.pgd(mnist_model, x.repeat(3, 1, 1, 1), y.repeat(3), PGD10, alpha=alpha, index=index.repeat(3), **common)
    for j, a in enumerate(alphas):
        single = attacks.pgd(mnist_model, x, y, PGD10, alpha=a, index=index, **common)
        part = slice(j * len(y), (j + 1) * len(y))
        assert torch.equal(stacked.x_adv[part], single.x_adv)
        assert torch.equal(stacked.margin[part], single.margin)


def test_keyed_start_depends_only_on_seed_and_index():
    index = torch.tensor([5, 9, 2])
    a = attacks.keyed_uniform(torch.Size([3, 1, 4, 4]), index, seed=0, stream=0)
    b = attacks.keyed_uniform(torch.Size([2, 1, 4, 4]), index[[2, 0]], seed=0, stream=0)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(a, attacks.keyed_uniform(torch.Size([3, 1, 4, 4]), index, seed=1, stream=0))
    assert a.min() >= 0 and a.max() < 1
    n = attacks.keyed_normal(torch.Size([4000, 64]), torch.arange(4000), seed=0, stream=0)
    assert abs(n.mean().item()) < 0.01 and abs(n.std().item() - 1) < 0.01


def test_generator_makes_starts_reproducible(mnist_model, mnist_test):
    _, x, y = batch(mnist_test, 16)
    runs = [
        attacks.pgd(mnist_model, x, y, AttackConfig(eps=EPS, step_size=STEP, steps=2, start=Start.NORMAL),
                    generator=torch.Generator().manual_seed(seed))
        for seed in (7, 7, 8)
    ]
    assert torch.equal(runs[0].x_adv, runs[1].x_adv)
    assert not torch.equal(runs[0].x_adv, runs[2].x_adv)


def test_restarts_follow_the_choice_rule(mnist_model, mnist_test):
    """Restart 0 is one of three candidates: an example it misclassifies stays misclassified with a
    margin no higher; one that stays correct keeps a margin no lower (the smaller weight)."""
    index, x, y = batch(mnist_test, 64)
    common = dict(index=index, seed=0)
    one = attacks.pgd(mnist_model, x, y, AttackConfig(eps=EPS, step_size=0.05, steps=3, restarts=1), **common)
    three_cfg = AttackConfig(eps=EPS, step_size=0.05, steps=3, restarts=3)
    three = attacks.pgd(mnist_model, x, y, three_cfg, **common)
    one_wrong, three_wrong = one.logits.argmax(1) != y, three.logits.argmax(1) != y
    assert torch.all(three_wrong[one_wrong])
    assert torch.all(three.margin[one_wrong] <= one.margin[one_wrong])
    both_correct = ~three_wrong
    assert torch.all(three.margin[both_correct] >= one.margin[both_correct])
    assert torch.any(three.margin != one.margin)
    # The record of the winning restart: zeros for one restart, the same for alpha 0 as for plain.
    assert one.restart.dtype == torch.int64 and torch.equal(one.restart, torch.zeros(64, dtype=torch.int64))
    assert set(three.restart.tolist()) <= {0, 1, 2} and torch.any(three.restart > 0)
    zero = attacks.pgd(mnist_model, x, y, three_cfg, alpha=0.0, **common)
    assert torch.equal(zero.restart, three.restart) and torch.equal(zero.x_adv, three.x_adv)
    # The returned logits and margin are those of the returned points.
    assert torch.allclose(attacks.predict(mnist_model, three.x_adv), three.logits, atol=1e-5)
    assert torch.equal(attacks.margin(three.logits, y), three.margin)


def test_attack_mode_is_restored_and_touches_no_parameter_gradient(mnist_model, mnist_test):
    _, x, y = batch(mnist_test, 8)
    mnist_model.train()
    attacks.pgd(mnist_model, x, y, AttackConfig(eps=EPS, step_size=STEP, steps=2), alpha=1.0)
    assert mnist_model.training
    assert all(p.requires_grad and p.grad is None for p in mnist_model.parameters())


def test_attack_runs_in_eval_mode(mnist_model, mnist_test):
    """Dropout is off inside the attack: the same start gives the same point twice."""
    index, x, y = batch(mnist_test, 16)
    mnist_model.train()
    pgd3 = AttackConfig(eps=EPS, step_size=STEP, steps=3)
    a = attacks.pgd(mnist_model, x, y, pgd3, index=index)
    b = attacks.pgd(mnist_model, x, y, pgd3, index=index)
    assert torch.equal(a.x_adv, b.x_adv)


def test_weight_gradient_reaches_input_and_parameters(mnist_model, mnist_test):
    _, x, y = batch(mnist_test, 16)
    x = x.clone().requires_grad_(True)
    s = attacks.importance_weights(mnist_model(x), y, 2.0)
    s.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in mnist_model.parameters())
    assert mnist_model.classifier.fc3.weight.grad.abs().sum() > 0


# --- options as enums or strings; anything else is refused -----------------------------------


def test_string_options_mean_their_enums(mnist_model, mnist_test):
    """``start="zero"`` once fell through to the uniform start; strings now parse to their enums."""
    index, x, y = batch(mnist_test, 16)
    natural = attacks.predict(mnist_model, x, "fp32")
    by_enum = attacks.pgd(mnist_model, x, y, AttackConfig(EPS, STEP, 3, start=Start.ZERO), alpha=1.0,
                          loss=InnerLoss.KL, natural_logits=natural, index=index, precision="fp32")
    by_string = attacks.pgd(mnist_model, x, y, AttackConfig(EPS, STEP, 3, start="zero"), alpha=1.0,
                            loss="kl", natural_logits=natural, index=index, precision="FP32")
    assert torch.equal(by_string.x_adv, by_enum.x_adv)
    uniform = attacks.pgd(mnist_model, x, y, AttackConfig(EPS, STEP, 3, start="uniform"), alpha=1.0,
                          loss="kl", natural_logits=natural, index=index)
    assert not torch.equal(uniform.x_adv, by_enum.x_adv)
    assert torch.equal(attacks.start_point(x, EPS, "zero"), x)


def test_an_unknown_start_is_refused_when_the_attack_is_configured():
    with pytest.raises(WmrbenchError, match="unknown start 'zeros'; choose one of"):
        AttackConfig(EPS, STEP, 1, start="zeros")


@pytest.mark.parametrize("option", [
    dict(loss="mse"),
    dict(loss=Start.UNIFORM),
    dict(precision="fp16"),
    dict(precision=torch.bfloat16),
    dict(precision=None),
])
def test_unknown_options_are_refused(mnist_model, mnist_test, option):
    _, x, y = batch(mnist_test, 4)
    kwargs = dict(option)
    attack = kwargs.pop("attack", AttackConfig(EPS, STEP, 1))
    with pytest.raises(WmrbenchError, match="choose one of"):
        attacks.pgd(mnist_model, x, y, attack, **kwargs)


def test_predict_and_autocast_refuse_unknown_precisions(mnist_model, mnist_test):
    _, x, _ = batch(mnist_test, 4)
    with pytest.raises(WmrbenchError, match="precision"):
        attacks.predict(mnist_model, x, torch.bfloat16)
    with pytest.raises(WmrbenchError, match="precision"):
        attacks.autocast("cpu", "half")
    with pytest.raises(WmrbenchError, match="start"):
        attacks.start_point(x, EPS, "gaussian")


# --- the choice among restarts ----------------------------------------------------------------


def test_choose_among_prefers_misclassified_then_lowest_else_highest_margin():
    # Three classes; y = 0. Logits chosen so that argmax and the margin's sign agree.
    y = torch.zeros(5, dtype=torch.int64)

    def candidate(value, margins, restart):
        m = torch.tensor(margins)
        logits = torch.stack([m, torch.zeros(5), torch.zeros(5)], dim=1)  # argmax 0 iff m > 0
        return AttackResult(torch.full((5, 1, 2, 2), value), logits, m, torch.full((5,), restart))

    best = candidate(1.0, [0.5, -0.2, 0.1, -0.3, 0.4], 0)
    new = candidate(2.0, [0.4, -0.1, 0.1, 0.2, -0.1], 1)
    chosen = choose_among(best, new, y)
    # correct/correct: the higher margin; wrong/wrong: the lower; a tie keeps the earlier;
    # wrong beats correct either way round.
    assert chosen.margin.tolist() == pytest.approx([0.5, -0.2, 0.1, -0.3, -0.1])
    assert chosen.x_adv[:, 0, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0, 2.0]
    assert chosen.logits[:, 0].tolist() == pytest.approx(chosen.margin.tolist())
    assert chosen.restart.tolist() == [0, 0, 0, 0, 1]
    # A candidate built without a restart record counts as restart 0.
    assert torch.equal(AttackResult(best.x_adv, best.logits, best.margin).restart, torch.zeros(5, dtype=torch.int64))


# --- the registry -----------------------------------------------------------------------------


def test_attack_registry():
    assert "pgd" in attacks.list_attacks()
    spec = attacks.get_attack("pgd")
    assert spec.name == "pgd" and spec.run is attacks.pgd and spec.description
    with pytest.raises(WmrbenchError, match="unknown attack 'apgd-xyz'.*pgd"):
        attacks.get_attack("apgd-xyz")
    with pytest.raises(ValueError, match="twice"):
        attacks.register_attack("pgd")(attacks.pgd)


def test_registered_pgd_is_the_same_attack(mnist_model, mnist_test):
    index, x, y = batch(mnist_test, 16)
    direct = attacks.pgd(mnist_model, x, y, PGD10, alpha=2.0, index=index)
    by_name = attacks.get_attack("pgd").run(mnist_model, x, y, PGD10, alpha=2.0, index=index)
    assert torch.equal(direct.x_adv, by_name.x_adv)
