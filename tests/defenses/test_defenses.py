"""The reweighting family: each loss pinned to its definition, written out by hand
here on fixed logits (float64, plain loops over examples and classes, independent of the
implementation), gradients reaching the parameters, the edge cases (all correct, all wrong,
kappa 0 and K), GAIRAT's kappa from the attack itself, and PGD-AT/TRADES unchanged by the
registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wmrbench.attacks import pgd
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Start
from wmrbench.core.config import Defense
from wmrbench.defenses import LossInputs, get_defense, list_defenses
from wmrbench.defenses.gairat import gair_weights, gairat_objective
from wmrbench.defenses.mail import mail_at_objective, mail_trades_objective, mail_weights
from wmrbench.defenses.mart import mart_objective
from wmrbench.core.presets import train_config

TOL = 1e-6


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def _logits(kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits_nat, logits_adv, y) for 6 examples of 5 classes: ``mixed`` (some right, some
    wrong), ``correct`` (every adversarial point classified correctly) or ``wrong`` (none)."""
    g = torch.Generator().manual_seed(seed)
    nat = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    adv = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    if kind == "correct":
        adv[torch.arange(6), y] = adv.max(dim=1).values + 1.0
        nat[torch.arange(6), y] = nat.max(dim=1).values + 1.0
    elif kind == "wrong":
        adv[torch.arange(6), y] = adv.min(dim=1).values - 1.0
        nat[torch.arange(6), y] = nat.min(dim=1).values - 1.0
    return nat, adv, y


def _hand_kl(p: list[float], q: list[float]) -> float:
    return sum(pk * (math.log(pk) - math.log(qk)) for pk, qk in zip(p, q) if pk > 0)


def _hand_margin(p: list[float], label: int) -> float:
    return p[label] - max(v for k, v in enumerate(p) if k != label)


def hand_mart(nat, adv, y, beta: float) -> float:
    """mart.py's loss, per example: CE(x') - log(1.0001 - max_{k!=y} p'_k) + beta (1 - p_y(x)) KL(p || p')."""
    total = 0.0
    for i in range(len(y)):
        label = int(y[i])
        p, q = _softmax(nat[i].tolist()), _softmax(adv[i].tolist())
        ce = -math.log(q[label])
        runner_up = max(v for k, v in enumerate(q) if k != label)
        total += ce - math.log(1.0001 - runner_up) + beta * (1 - p[label]) * _hand_kl(p, q)
    return total / len(y)


def hand_gair(kappa: list[int], steps: int, lam: float) -> list[float]:
    """GAIR.py's Tanh weight, normalized to mean 1."""
    half = steps // 2
    raw = [(math.tanh(lam + (half - k) * 5 / half) + 1) / 2 for k in kappa]
    return [w * len(raw) / sum(raw) for w in raw]


def hand_mail_weight(q: list[float], label: int, bias: float, slope: float) -> float:
    """mail_loss.py: PM = (best wrong probability) - p_y, weight 3 * sigmoid((PM + bias) * slope)."""
    pm = max(v for k, v in enumerate(q) if k != label) - q[label]
    return 3 / (1 + math.exp(-(pm + bias) * slope))


@pytest.mark.parametrize("kind", ["mixed", "correct", "wrong"])
def test_mart_equals_its_definition(kind):
    nat, adv, y = _logits(kind)
    got = mart_objective(nat, adv, y, beta=6.0)
    assert abs(got.loss.item() - hand_mart(nat, adv, y, 6.0)) < TOL
    p_y = [_softmax(nat[i].tolist())[int(y[i])] for i in range(6)]
    assert torch.allclose(got.weights, torch.tensor([1 - v for v in p_y], dtype=got.weights.dtype), atol=TOL)
    if kind == "correct":  # a clean point classified right weighs less than half
        assert (got.weights < 0.8).all()
    if kind == "wrong":
        assert (got.weights > 0.5).all()


def test_mart_stays_finite_when_the_attack_takes_all_the_mass():
    """The runner-up at probability 1: the authors' 1.0001 keeps log(1.0001 - 1) finite."""
    adv = torch.tensor([[0.0, 200.0, 0.0]], dtype=torch.float64)
    nat = torch.tensor([[5.0, 0.0, 0.0]], dtype=torch.float64)
    got = mart_objective(nat, adv, torch.tensor([0]), beta=1.0)
    assert math.isfinite(got.loss.item())
    assert abs(got.loss.item() - hand_mart(nat, adv, torch.tensor([0]), 1.0)) < 1e-4 * abs(got.loss.item())


@pytest.mark.parametrize("steps", [10, 11, 40])
def test_gair_weights_equal_their_definition_and_the_issue_formula(steps):
    kappa = [0, 1, steps // 2, steps - 1, steps, 3]
    got = gair_weights(torch.tensor(kappa), steps, -1.0)
    assert torch.allclose(got.double(), torch.tensor(hand_gair(kappa, steps, -1.0), dtype=torch.float64), atol=TOL)
    if steps % 2 == 0:  # the issue's form (1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2 for even K
        raw = [(1 + math.tanh(-1.0 + 5 * (1 - 2 * k / steps))) / 2 for k in kappa]
        assert torch.allclose(got.double(), torch.tensor([w * 6 / sum(raw) for w in raw], dtype=torch.float64), atol=TOL)
    assert abs(got.mean().item() - 1.0) < TOL  # normalized over the batch
    assert got[0] > got[3] > got[4]  # broken at once weighs most, survived every step least


def test_gairat_kappa_edges_and_loss():
    nat, adv, y = _logits("mixed")
    steps = 10
    ce = [-math.log(_softmax(adv[i].tolist())[int(y[i])]) for i in range(6)]
    for kappa in ([0] * 6, [steps] * 6):  # every example alike: the normalized weights are all 1
        got = gairat_objective(adv, y, torch.tensor(kappa), steps=steps, lam=-1.0, reweight=True)
        assert torch.allclose(got.weights.double(), torch.ones(6, dtype=torch.float64), atol=TOL)
        assert abs(got.loss.item() - sum(ce) / 6) < TOL
    kappa = [0, steps, 0, steps, 5, 2]
    got = gairat_objective(adv, y, torch.tensor(kappa), steps=steps, lam=-1.0, reweight=True)
    w = hand_gair(kappa, steps, -1.0)
    assert abs(got.loss.item() - sum(wi * ci for wi, ci in zip(w, ce)) / 6) < TOL
    # raw weight at kappa 0 is (1 + tanh(4)) / 2, at kappa K (1 + tanh(-6)) / 2: the ratio is ~8e4
    assert got.weights[0] / got.weights[1] > 1e4
    burn = gairat_objective(adv, y, torch.tensor(kappa), steps=steps, lam=-1.0, reweight=False)
    assert abs(burn.loss.item() - sum(ce) / 6) < TOL and (burn.weights == 1).all()


@pytest.mark.parametrize("kind", ["mixed", "correct", "wrong"])
def test_mail_equals_its_definition(kind):
    nat, adv, y = _logits(kind)
    bias, slope, beta = -1.5, 1.0, 5.0
    hand_w = []
    at_total, kl_total, nat_total = 0.0, 0.0, 0.0
    for i in range(6):
        label = int(y[i])
        p, q = _softmax(nat[i].tolist()), _softmax(adv[i].tolist())
        w = hand_mail_weight(q, label, bias, slope)
        hand_w.append(w)
        at_total += w * -math.log(q[label])
        kl_total += w * _hand_kl(p, q)
        nat_total += -math.log(p[label])
    weights = mail_weights(adv, y, bias=bias, slope=slope)
    assert torch.allclose(weights.double(), torch.tensor(hand_w, dtype=torch.float64), atol=TOL)
    assert abs(mail_at_objective(adv, y, weights).loss.item() - at_total / 6) < TOL
    trades = mail_trades_objective(nat, adv, y, weights, beta=beta).loss.item()
    assert abs(trades - (nat_total / 6 + beta * kl_total / 6)) < TOL
    # the weight is 3 sigmoid(-margin - 1.5): below 3 sigmoid(-1.5) when right, above when wrong
    pivot = 3 / (1 + math.exp(1.5))
    if kind == "correct":
        assert (weights < pivot).all()
    if kind == "wrong":
        assert (weights > pivot).all()


def test_every_defense_is_registered_with_its_training_attack():
    assert set(list_defenses()) == {d.value for d in Defense}
    assert get_defense("trades").inner_loss is InnerLoss.KL and get_defense("mail-trades").inner_loss is InnerLoss.KL
    assert get_defense("mart").inner_loss is InnerLoss.CE and get_defense("mart").natural_forward
    assert get_defense("gairat").counts_survived and not get_defense("pgd").counts_survived


class _Constant(nn.Module):
    """Logits that do not depend on the input (the attack cannot move them): ``label`` wins."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10) + self.scale * x.flatten(1).sum(1, keepdim=True)
        logits[:, self.label] += 5.0
        return logits


def test_kappa_is_K_when_every_step_is_survived_and_0_when_none_is(digits_test):
    x, y = digits_test.x[:8], torch.zeros(8, dtype=torch.int64)
    attack = AttackConfig(eps=0.1, step_size=0.025, steps=7, start=Start.NORMAL)
    always_right = pgd(_Constant(0), x, y, attack, count_survived=True, generator=torch.Generator().manual_seed(0))
    always_wrong = pgd(_Constant(3), x, y, attack, count_survived=True, generator=torch.Generator().manual_seed(0))
    assert always_right.survived.tolist() == [7] * 8
    assert always_wrong.survived.tolist() == [0] * 8


def _clean_digits_model():
    """A digits model trained briefly on clean images (accurate, not robust): the attack breaks
    its examples after various numbers of steps."""
    from wmrbench.data import load_split
    from wmrbench.models import create_model

    torch.manual_seed(0)
    model = create_model("digitsnet", 10, 1)
    train = load_split("digits", "", train=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(len(train), (128,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(train.x[idx]), train.y[idx]).backward()
        optimizer.step()
    return model.eval()


def test_kappa_counts_the_steps_that_started_from_a_correct_point(digits_test):
    """kappa = sum over k < K of [the point after k steps is classified correctly]: each prefix
    of the attack is rerun from the same start, independently of the counting."""
    digits_model = _clean_digits_model()
    x, y = digits_test.x[:64], digits_test.y[:64]
    steps = 6
    attack = AttackConfig(eps=0.1, step_size=0.02, steps=steps, start=Start.NORMAL)
    got = pgd(digits_model, x, y, attack, count_survived=True, generator=torch.Generator().manual_seed(1))
    expected = torch.zeros(64, dtype=torch.int64)
    for k in range(steps):
        prefix = AttackConfig(eps=0.1, step_size=0.02, steps=k, start=Start.NORMAL)
        point = pgd(digits_model, x, y, prefix, generator=torch.Generator().manual_seed(1))
        expected += point.logits.argmax(dim=1) == y
    assert torch.equal(got.survived, expected)
    # not vacuous: kappa takes values strictly between 0 and K (examples broken part-way)
    assert ((got.survived > 0) & (got.survived < steps)).any(), got.survived
    plain = pgd(digits_model, x, y, attack, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.x_adv, got.x_adv) and plain.survived is None  # counting changes no step


@pytest.mark.parametrize("defense", ["mart", "gairat", "mail-at", "mail-trades"])
def test_gradients_reach_every_parameter(defense, digits_test):
    from wmrbench.models import create_model
    from wmrbench.training import train_step

    torch.manual_seed(0)
    model = create_model("digitsnet", 10, 1)
    cfg = train_config("digits", defense, steps=3, burn_in=0)
    x, y = digits_test.x[:32], digits_test.y[:32]
    objective, _ = train_step(model, x, y, cfg, torch.Generator().manual_seed(0), "fp32", epoch=0)
    objective.loss.backward()
    assert math.isfinite(objective.loss.item())
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("defense", ["pgd", "trades"])
@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_pgd_and_trades_through_the_registry_equal_the_objectives_called_directly(defense, alpha, digits_test):
    """The step before the registry called pgd_at_objective / trades_objective itself: the same
    attack and the same loss, bit for bit."""
    from wmrbench.attacks import predict
    from wmrbench.models import create_model
    from wmrbench.defenses.objectives import pgd_at_objective, trades_objective
    from wmrbench.training import train_step

    torch.manual_seed(0)
    model = create_model("digitsnet", 10, 1)
    cfg = train_config("digits", defense, alpha_train=alpha, steps=3)
    x, y = digits_test.x[:32], digits_test.y[:32]
    torch.manual_seed(5)
    got, margin = train_step(model, x, y, cfg, torch.Generator().manual_seed(3), "fp32")
    torch.manual_seed(5)
    trades = defense == "trades"
    natural = predict(model, x, "fp32") if trades else None
    result = pgd(model, x, y, cfg.attack, alpha=alpha if alpha > 0 else None, loss="kl" if trades else "ce",
                 generator=torch.Generator().manual_seed(3), natural_logits=natural)
    model.train()
    logits_adv = model(result.x_adv)
    if trades:
        want = trades_objective(model(x), logits_adv, y, alpha=alpha, beta=cfg.beta)
    else:
        want = pgd_at_objective(logits_adv, y, alpha=alpha)
    assert torch.equal(got.loss, want.loss) and torch.equal(got.weights, want.weights)
    assert torch.equal(margin, result.margin)


def test_loss_inputs_carry_the_epoch_for_burn_in():
    nat, adv, y = _logits("mixed")
    cfg = train_config("digits", "mail-at", burn_in=2)
    spec = get_defense("mail-at")
    before = spec.loss(LossInputs(adv, None, y, None, epoch=1), cfg)
    after = spec.loss(LossInputs(adv, None, y, None, epoch=2), cfg)
    assert (before.weights == 1).all()
    assert abs(before.loss.item() - F.cross_entropy(adv, y).item()) < TOL
    assert not torch.allclose(after.weights, torch.ones(6, dtype=after.weights.dtype))


BURNS_IN = ("gairat", "mail-at", "mail-trades")


@pytest.mark.parametrize("defense", BURNS_IN)
@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
def test_a_shorter_run_scales_the_burn_in_and_keeps_an_epoch_to_reweight(dataset, defense):
    """--epochs 3 without --burn-in kept the preset's 15 (digits): 3 epochs of plain PGD-AT
    labelled GAIRAT. The burn-in keeps its share of the run, and one epoch at least follows it."""
    full = train_config(dataset, defense)
    for epochs in (1, 2, 3, 8, full.epochs):
        cfg = train_config(dataset, defense, epochs=epochs)
        assert cfg.burn_in < epochs, (epochs, cfg.burn_in)
        assert cfg.burn_in == min(round(full.burn_in * epochs / full.epochs), epochs - 1)
    assert train_config(dataset, defense, epochs=full.epochs).burn_in == full.burn_in
    assert train_config(dataset, defense, epochs=3, burn_in=1).burn_in == 1  # given: kept


@pytest.mark.parametrize("defense", BURNS_IN)
def test_a_burn_in_covering_every_epoch_is_refused(defense):
    """Never a run labelled as a defense whose reweighting never ran."""
    from wmrbench.defenses import check_spec
    from wmrbench.core.errors import WmrbenchError

    base = "TRADES" if defense == "mail-trades" else "PGD-AT"
    for epochs, burn_in in ((3, 15), (3, 3), (1, 1)):
        cfg = train_config("digits", defense, epochs=epochs, burn_in=burn_in)
        with pytest.raises(WmrbenchError, match=f"leaves no epoch of {epochs} .* would be plain {base}"):
            check_spec(get_defense(defense), cfg)
    check_spec(get_defense(defense), train_config("digits", defense, epochs=3, burn_in=2))
