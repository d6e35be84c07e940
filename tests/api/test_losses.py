"""wmrbench.losses against the training loop's own step.

At fixed inputs, weights, attack seed and dropout seed, each loss from ``wmrbench.losses`` must
equal, bit for bit, what ``wmrbench train``'s step (``training.train_step`` with the config the
CLI builds through ``presets.train_config``) computes; and the weight of "+ours" must carry
gradient unless detached.
"""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from wmrbench.training import losses

from wmrbench import training
from wmrbench.core.config import DatasetName
from wmrbench.core.defaults import DEFAULTS
from wmrbench.models import create_model
from wmrbench.core.presets import train_config

ATTACK = dict(eps=0.3, step_size=0.05, steps=4)


def _batch(n: int = 32):
    digits = load_digits()  # real 8x8 digits, values 0..16
    x = torch.tensor(digits.images[:n], dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target[:n], dtype=torch.int64)
    torch.manual_seed(0)
    return create_model("digitsnet", num_classes=10, in_channels=1), x, y


def _seeded(call):
    """Run ``call(generator)`` with the attack's generator and the global RNG (dropout) seeded."""
    torch.manual_seed(11)
    return call(torch.Generator().manual_seed(5))


# (wmrbench.losses function, its settings, the CLI's defense and the same settings by their
# TrainConfig names)
CASES = [
    ("pgd_at", dict(alpha=0.0), "pgd", dict(alpha_train=0.0)),
    ("pgd_at", dict(alpha=2.0), "pgd", dict(alpha_train=2.0)),
    ("pgd_at", dict(alpha=2.0, normalize_weights=True), "pgd", dict(alpha_train=2.0, normalize_weights=True)),
    ("trades", dict(alpha=0.0), "trades", dict(alpha_train=0.0, beta=DEFAULTS.beta)),  # the library's beta
    ("trades", dict(alpha=2.0, beta=5.0), "trades", dict(alpha_train=2.0, beta=5.0)),
    ("trades", dict(alpha=2.0, detach_weights=True), "trades", dict(alpha_train=2.0, beta=DEFAULTS.beta, detach_weights=True)),
    ("mart", dict(beta=6.0), "mart", dict(beta=6.0)),
    ("gairat", dict(gair_lambda=-1.0), "gairat", dict(gair_lambda=-1.0, burn_in=0)),
    ("gairat", dict(epoch=0, burn_in=3), "gairat", dict(burn_in=3)),
    ("mail_at", dict(mail_bias=-1.5, mail_slope=1.0), "mail-at", dict(mail_bias=-1.5, mail_slope=1.0, burn_in=0)),
    ("mail_trades", dict(beta=6.0, mail_bias=-1.0), "mail-trades", dict(beta=6.0, mail_bias=-1.0, burn_in=0)),
]


@pytest.mark.parametrize(("name", "settings", "defense", "cli_settings"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_equals_the_training_steps(name, settings, defense, cli_settings):
    model, x, y = _batch()
    ours = _seeded(lambda g: getattr(losses, name)(model, x, y, **ATTACK, generator=g, **settings))
    assert model.training  # left in train mode, as the training step leaves it
    cfg = train_config(DatasetName.DIGITS, defense, **ATTACK, **cli_settings, device="cpu", precision="fp32")
    epoch = settings.get("epoch", 0)
    theirs, margin = _seeded(lambda g: training.train_step(model, x, y, cfg, g, cfg.precision, epoch=epoch))
    assert ours.loss.dim() == 0 and torch.isfinite(ours.loss)
    assert torch.equal(ours.loss, theirs.loss)
    assert torch.equal(ours.weights, theirs.weights) and ours.weights.shape == y.shape
    assert torch.equal(ours.margin, margin)
    assert not ours.weights.requires_grad


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DESIGN's margin, computed here from its definition: p_y - max_{t != y} p_t."""
    p = logits.softmax(dim=1)
    others = p.scatter(1, y[:, None], float("-inf"))
    return p.gather(1, y[:, None]).squeeze(1) - others.max(dim=1).values


@pytest.mark.parametrize("name", ["pgd_at", "trades"])
def test_ours_weights_are_the_papers_and_unweighted_at_alpha_zero(name):
    """s_i = exp(-alpha * margin_i): the sign and the scale, not just "not 1". DigitsNet has no
    dropout or BatchNorm, so its train-mode logits (the loss's) equal its eval-mode ones."""
    model, x, y = _batch()
    with torch.no_grad():  # confident logits: margins of both signs and far from 0
        model.classifier.fc2.weight.mul_(200.0)
    fn = getattr(losses, name)
    plain = _seeded(lambda g: fn(model, x, y, **ATTACK, alpha=0.0, generator=g))
    assert torch.equal(plain.weights, torch.ones_like(plain.weights))
    # No attack step from a zero start: x' is x, so the margin is computed here, independently.
    at_x = _seeded(lambda g: fn(model, x, y, eps=0.3, step_size=0.05, steps=0, start="zero", alpha=2.0, generator=g))
    with torch.no_grad():
        margin = _margin(model(x), y)
    assert margin.min() < -0.1 and margin.max() > 0.1  # exp(+2m) is not exp(-2m) on either side
    torch.testing.assert_close(at_x.weights, torch.exp(-2.0 * margin), rtol=1e-5, atol=0)
    torch.testing.assert_close(at_x.margin, margin, rtol=0, atol=1e-6)
    # After the attack's steps: the same formula at the attack's point, at another alpha.
    attacked = _seeded(lambda g: fn(model, x, y, **ATTACK, alpha=0.7, generator=g))
    torch.testing.assert_close(attacked.weights, torch.exp(-0.7 * attacked.margin), rtol=1e-5, atol=0)


def _grads(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", ["pgd_at", "trades"])
def test_gradient_flows_through_the_weight_unless_detached(name):
    """The same point x' and the same loss value; the weight's own gradient (d s / d theta) is
    what separates kept from detached. At alpha 0 that gradient is an exact zero."""
    model, x, y = _batch()
    fn = getattr(losses, name)
    for alpha, differ in ((2.0, True), (0.0, False)):
        kept = _seeded(lambda g: fn(model, x, y, **ATTACK, alpha=alpha, generator=g))
        detached = _seeded(lambda g: fn(model, x, y, **ATTACK, alpha=alpha, detach_weights=True, generator=g))
        assert torch.equal(kept.loss, detached.loss)
        g_kept, g_detached = _grads(kept.loss, model), _grads(detached.loss, model)
        same = all(torch.allclose(a, b, rtol=0, atol=1e-7) for a, b in zip(g_kept, g_detached))
        assert same is not differ, (name, alpha)


def test_one_line_errors():
    from wmrbench.core.errors import WmrbenchError

    model, x, y = _batch(4)
    with pytest.raises(WmrbenchError, match=r"\[0, 1\]"):
        losses.pgd_at(model, x * 16, y, **ATTACK)
    with pytest.raises(WmrbenchError, match="2"):
        losses.gairat(model, x, y, eps=0.3, step_size=0.05, steps=1)
