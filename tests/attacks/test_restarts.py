"""Restarts on the real robust MNIST model: the single-restart path is unchanged, the choice among
restarts is the one that is best for every alpha, the winning restart is recorded, more restarts
never raise A_rob, A_sa or A_tr, and chained restarts start where the previous one stopped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, require_mnist
from wmrbench import attacks
from wmrbench.attacks import AttackResult
from wmrbench.core.attack_config import AttackConfig, InnerLoss, RestartFrom, Start
from wmrbench.core.config import DatasetName
from wmrbench.results.metrics import weighted_accuracy

ALPHAS = (0.5, 1.0, 2.0, 5.0)
# Weak on purpose (at most 0.09 of travel in a 0.3 ball): the start matters, so restarts do.
WEAK = AttackConfig(eps=0.3, step_size=0.03, steps=3)
N_RULE = 200  # examples in the candidate fixture
R_RULE = 4  # restarts in the candidate fixture


@pytest.fixture(scope="module")
def model():
    require_mnist()
    from wmrbench.models.checkpoint import load_model_from_checkpoint

    return load_model_from_checkpoint(MNIST_CHECKPOINT, "smallcnn", 10, 1).eval()


@pytest.fixture(scope="module")
def data():
    require_mnist()
    from wmrbench.data import load_split

    return load_split(DatasetName.MNIST, str(MNIST_DIR), train=False)


def batch(data, n, offset=0):
    index = torch.arange(offset, offset + n)
    return index, data.images(index), data.y[index]


def reference_run(model, x, y, x_start, attack, alpha=None, loss="ce", natural=None):
    """Weighted L-infinity PGD from ``x_start``, written out with the floating-point operations of
    the engine at commit b979b47 (before this change), so that results must agree bit for bit."""
    lower, upper = (x - attack.eps).clamp(min=0.0), (x + attack.eps).clamp(max=1.0)
    x_adv = x_start.clone()
    for _ in range(attack.steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        if loss == "ce":
            per_example = F.cross_entropy(logits, y, reduction="none")
        else:
            per_example = F.kl_div(F.log_softmax(logits, 1), natural.softmax(1), reduction="none").sum(1)
        if alpha is not None:
            per_example = torch.exp(-alpha * attacks.margin(logits, y)) * per_example
        (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
        x_adv = torch.clamp(x_adv.detach().add(grad.sign(), alpha=attack.step_size), lower, upper)
    with torch.no_grad():
        logits = model(x_adv)
    return AttackResult(x_adv, logits, attacks.margin(logits, y))


def chained_start(x, prev_end, eps, index, seed, restart):
    """Restart r of a chained uniform-start attack, written out: restart r's keyed U(-eps, eps)
    noise added to restart r-1's end point, clamped to the eps-ball around x and to [0, 1]."""
    noise = attacks.keyed_uniform(x.shape, index, seed, 2 * restart + 1) * 2.0 - 1.0
    point = prev_end + eps * noise
    return torch.minimum(torch.maximum(point, x - eps), x + eps).clamp(0.0, 1.0)


def new_rule(candidates, y):
    """The index of the chosen candidate per example, over all candidates at once (independent of
    choose_among's pairwise fold): a misclassified one with the lowest margin, else the highest
    margin, the earliest on ties."""
    margins = torch.stack([c.margin for c in candidates])
    wrong = torch.stack([c.logits.argmax(1) != y for c in candidates])
    key = torch.where(wrong.any(0), torch.where(wrong, -margins, float("-inf")), margins)
    return key.argmax(0)  # argmax returns the first of equal maxima


def old_rule(candidates):
    """The rule before this change: the lowest margin, the earliest on ties."""
    return torch.stack([c.margin for c in candidates]).argmin(0)


def pick(candidates, chosen):
    """The chosen candidate's margin and correctness per example."""
    rows = torch.arange(len(chosen))
    margins = torch.stack([c.margin for c in candidates])[chosen, rows]
    logits = torch.stack([c.logits for c in candidates])[chosen, rows]
    return margins, logits


# --- restarts = 1 is the engine of b979b47, bit for bit ---------------------------------------


@pytest.mark.parametrize("start", list(Start))
def test_single_restart_is_bit_identical_to_the_previous_engine(model, data, start):
    index, x, y = batch(data, 32)
    attack = AttackConfig(eps=0.3, step_size=0.03, steps=4, start=start)
    natural = attacks.predict(model, x)
    x_start = attacks.start_point(x, attack.eps, start, 0, index=index, seed=7)
    cases = [dict(alpha=None), dict(alpha=2.0), dict(alpha=torch.linspace(0, 3, 32), loss="kl")]
    for case in cases:
        got = attacks.pgd(model, x, y, attack, index=index, seed=7, natural_logits=natural, **case)
        want = reference_run(model, x, y, x_start, attack, natural=natural, **case)
        assert torch.equal(got.x_adv, want.x_adv)
        assert torch.equal(got.logits, want.logits) and torch.equal(got.margin, want.margin)
        assert torch.equal(got.restart, torch.zeros(32, dtype=torch.int64))


# --- the choice among restarts and its record ----------------------------------------------------


@pytest.fixture(scope="module")
def candidates(model, data):
    """Plain PGD's R_RULE fresh restarts on N_RULE examples, each restart run on its own."""
    index, x, y = batch(data, N_RULE)
    runs = []
    for restart in range(R_RULE):
        x_start = attacks.start_point(x, WEAK.eps, WEAK.start, restart, index=index, seed=0)
        runs.append(reference_run(model, x, y, x_start, WEAK))
    return index, x, y, runs


@pytest.mark.slow  # 11 s measured on a loaded 2-core CPU (tests/README.md)
def test_the_recorded_restart_is_the_chosen_one(model, candidates):
    index, x, y, runs = candidates
    got = attacks.pgd(model, x, y, AttackConfig(WEAK.eps, WEAK.step_size, WEAK.steps, restarts=R_RULE), index=index)
    chosen = new_rule(runs, y)
    assert torch.equal(got.restart, chosen)
    assert len(set(chosen.tolist())) == R_RULE  # every restart wins somewhere: the test has teeth
    for i in range(N_RULE):  # each example's point is its winning restart's own end point
        assert torch.equal(got.x_adv[i], runs[int(got.restart[i])].x_adv[i])
    margins, logits = pick(runs, chosen)
    assert torch.equal(got.margin, margins) and torch.equal(got.logits, logits)


@pytest.mark.slow  # its fixture: 5 s measured on a loaded 2-core CPU (tests/README.md)
def test_the_new_rule_never_gives_a_higher_weighted_accuracy_than_the_old(candidates):
    _, _, y, runs = candidates
    new_margin, new_logits = pick(runs, new_rule(runs, y))
    old_margin, old_logits = pick(runs, old_rule(runs))
    new_correct, old_correct = (new_logits.argmax(1) == y).numpy(), (old_logits.argmax(1) == y).numpy()
    assert (new_correct == old_correct).all()  # A_rob does not change
    gaps = []
    for alpha in ALPHAS:
        new_sa = weighted_accuracy(new_correct, new_margin.numpy(), alpha)
        old_sa = weighted_accuracy(old_correct, old_margin.numpy(), alpha)
        assert new_sa <= old_sa + 1e-9, alpha
        gaps.append(old_sa - new_sa)
    assert max(gaps) > 0.01  # percentage points: the new rule is strictly better here
    # An example correct in every restart keeps its highest-margin point (the smallest weight);
    # one misclassified somewhere keeps its lowest-margin misclassified point.
    margins = torch.stack([c.margin for c in runs])
    wrong = torch.stack([c.logits.argmax(1) != y for c in runs])
    all_correct = ~wrong.any(0)
    assert all_correct.any() and (~all_correct).any()
    assert torch.equal(new_margin[all_correct], margins.amax(0)[all_correct])
    lowest_wrong = margins.masked_fill(~wrong, float("inf")).amin(0)
    assert torch.equal(new_margin[~all_correct], lowest_wrong[~all_correct])
    assert not new_correct[(~all_correct).numpy()].any()


@pytest.mark.slow  # 10 restarts of 3 steps on 5 x 128 images: ~60 s on a shared, loaded 2-core CPU
def test_more_restarts_never_raise_a_rob_a_sa_or_a_tr(model, data):
    """Keyed fresh restarts: the first R restarts of an (R+1)-restart call are those of an
    R-restart call, and the choice is best for every alpha, so no metric may go up with R.

    One stacked call per R: the alpha 0 copy is plain PGD bit for bit (tested elsewhere), whose
    points give A_rob and every A_sa; the other copies give A_tr at their alpha."""
    n = 128
    index, x, y = batch(data, n, offset=200)
    stack = (0.0, *ALPHAS)
    alpha = torch.tensor(stack).repeat_interleave(n)
    k = len(stack)
    history = []
    for restarts in (1, 2, 3, 4):
        attack = AttackConfig(WEAK.eps, WEAK.step_size, WEAK.steps, restarts=restarts)
        result = attacks.pgd(model, x.repeat(k, 1, 1, 1), y.repeat(k), attack, alpha=alpha, index=index.repeat(k))
        correct = (result.logits.argmax(1) == y.repeat(k)).view(k, n).numpy()
        margin = result.margin.view(k, n).numpy()
        metrics = {"A_rob": 100.0 * correct[0].mean()}
        for j, a in enumerate(ALPHAS, start=1):
            metrics[f"A_sa({a})"] = weighted_accuracy(correct[0], margin[0], a)
            metrics[f"A_tr({a})"] = weighted_accuracy(correct[j], margin[j], a)
        history.append(metrics)
    for before, after in zip(history, history[1:]):
        for name, value in after.items():
            assert value <= before[name] + 1e-9, (name, before[name], value)
    drops = [history[0][name] - history[-1][name] for name in history[0] if name != "A_rob"]
    assert min(drops) > 0  # every A_sa and A_tr strictly lower after 4 restarts than after 1


# --- chained restarts ----------------------------------------------------------------------------


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
def test_chained_restarts_start_from_the_previous_end_point(model, data):
    index, x, y = batch(data, 64, offset=400)
    attack = AttackConfig(eps=0.3, step_size=0.03, steps=4, restarts=3, restart_from=RestartFrom.PREVIOUS)
    got = attacks.pgd(model, x, y, attack, alpha=1.0, index=index, seed=2)
    runs, end = [], x
    for restart in range(3):
        # Restart 0 starts from x plus its noise, as a fresh restart does.
        runs.append(reference_run(model, x, y, chained_start(x, end, attack.eps, index, 2, restart), attack, alpha=1.0))
        end = runs[-1].x_adv
    chosen = new_rule(runs, y)
    assert torch.equal(got.restart, chosen) and torch.any(chosen == 2)
    margins, logits = pick(runs, chosen)
    assert torch.equal(got.margin, margins) and torch.equal(got.logits, logits)
    rows = torch.arange(64)
    assert torch.equal(got.x_adv, torch.stack([c.x_adv for c in runs])[chosen, rows])
    assert (got.x_adv - x).abs().max() <= attack.eps + 1e-6
    assert got.x_adv.min() >= 0 and got.x_adv.max() <= 1
    # Chaining is not fresh restarts; with one restart there is nothing to chain.
    fresh = attacks.pgd(model, x, y, AttackConfig(0.3, 0.03, 4, restarts=3), alpha=1.0, index=index, seed=2)
    assert not torch.equal(fresh.x_adv, got.x_adv)
    one = dict(alpha=1.0, index=index, seed=2)
    assert torch.equal(attacks.pgd(model, x, y, AttackConfig(0.3, 0.03, 4, restart_from="previous"), **one).x_adv,
                       attacks.pgd(model, x, y, AttackConfig(0.3, 0.03, 4), **one).x_adv)


def test_chained_zero_start_restarts_continue_the_attack(model, data):
    """With no start noise, restart 1 of k steps continues restart 0: its end point is that of
    one run of 2k steps."""
    index, x, y = batch(data, 64, offset=500)
    # Steps of 0.1: long enough that restart 1 misclassifies (and so wins) a few examples.
    chained = AttackConfig(0.3, 0.1, 3, restarts=2, start=Start.ZERO, restart_from=RestartFrom.PREVIOUS)
    got = attacks.pgd(model, x, y, chained, loss=InnerLoss.CE, index=index)
    three = attacks.pgd(model, x, y, AttackConfig(0.3, 0.1, 3, start=Start.ZERO), index=index)
    six = attacks.pgd(model, x, y, AttackConfig(0.3, 0.1, 6, start=Start.ZERO), index=index)
    for restart, run in ((0, three), (1, six)):
        won = got.restart == restart
        assert won.any()
        assert torch.equal(got.x_adv[won], run.x_adv[won])
