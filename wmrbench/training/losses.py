"""The training losses for a user's own loop: one call runs the training attack and the
(weighted) loss, exactly as ``wmrbench train`` does in each step.

    for x, y in loader:
        out = wmrbench.losses.trades(model, x, y, eps=0.3, step_size=0.01, steps=40, alpha=2.0)
        optimizer.zero_grad(); out.loss.backward(); optimizer.step()

Left out, the attack budget, ``beta`` and ``alpha`` (alpha_train) are the library's defaults
(:mod:`wmrbench.core.defaults`: the paper's CIFAR-10 TRADES setting, eps 0.031, 10 steps of 0.007,
beta 5, alpha 0); ``step_size`` left out with another ``eps`` or ``steps`` keeps that walk's
reach (``steps * step_size / eps``).

Each function is one call of the training step itself (:func:`wmrbench.training.train_step`),
with the defense taken from :mod:`wmrbench.defenses` and its formula from
:mod:`wmrbench.defenses.objectives` or the defense's module: nothing here computes a loss of its own.

Model mode, as the training step handles it: the training attack runs the model in eval mode
(frozen BatchNorm statistics, no dropout, gradients for the input only; ``attack_mode="train"``
attacks in train mode, as the authors' PGD-AT code does), then the model is put in **train
mode** for the forward passes the loss needs, and **left in train mode**, ready for
``loss.backward()`` and the optimizer step. Call ``model.eval()`` yourself before evaluating.
``x`` and ``y`` are moved to the model's device; ``x`` holds images in [0, 1].

Randomness: the attack's start noise comes from ``generator`` (a ``torch.Generator`` on the
model's device; None: the global RNG), dropout from the global RNG, as in ``wmrbench train``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench.attacks.inputs import check_attack_inputs
from wmrbench.attacks.wrappers import model_device
from wmrbench.core.attack_config import AttackConfig, Precision, Start
from wmrbench.core.checks import parse_enum
from wmrbench.core.config import CUSTOM_DATASET, AttackMode, Defense, TrainConfig
from wmrbench.core.defaults import DEFAULTS, scaled_step_size
from wmrbench.defenses import check_spec, get_defense
from wmrbench.training.step import train_step

# No data set is named here: the library's one rule (wmrbench.core.defaults, the paper's CIFAR-10
# TRADES setting) gives the training attack's budget, beta and alpha (0: the plain defense).
_TRAIN = DEFAULTS.train_attack
_EPS, _STEPS, _BETA, _ALPHA = _TRAIN.eps, _TRAIN.steps, DEFAULTS.beta, DEFAULTS.alpha_train

__all__ = ["LossResult", "gairat", "mail_at", "mail_trades", "mart", "pgd_at", "trades"]


@dataclass(frozen=True)
class LossResult:
    """One training step's loss, before ``backward()``."""

    loss: Tensor  # scalar to backpropagate (in the autograd graph of the model's parameters)
    weights: Tensor  # per-example weights of the loss, detached (s_i for "+ours"; 1 when unweighted)
    margin: Tensor  # per-example margin at the training attack's point (eval mode), detached


def _run(
    defense: Defense, model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step_size: float | None, steps: int,
    start: str, norm: str, attack_mode: str, generator: torch.Generator | None, precision: str, epoch: int = 0,
    **loss_settings: object,
) -> LossResult:
    if step_size is None:  # keeps the default walk's reach for another eps or steps
        step_size = scaled_step_size(eps, steps, _TRAIN)
    device = model_device(model)
    # The same check as WeightedPGD and wmrbench.evaluate: once per call (one probe, one sync).
    checked = check_attack_inputs(model, x, y, loss_settings.get("alpha", 0.0), device)
    x, y = checked.x, checked.y
    precision_ = parse_enum(Precision, precision, "precision")
    # train_step reads the defense, its settings and the attack from the config; the run, data,
    # model and optimizer fields below are never read by a step (they describe a CLI run).
    burn_in = loss_settings.get("burn_in", 0)
    # A step belongs to no run of known length: the run is made just long enough for its burn-in
    # (check_spec refuses a run whose burn-in covers every epoch); a bad burn_in is refused below.
    epochs = burn_in + 1 if isinstance(burn_in, int) and not isinstance(burn_in, bool) and burn_in >= 0 else 1
    cfg = TrainConfig(
        run="losses", dataset=CUSTOM_DATASET, arch=type(model).__name__, defense=defense,
        alpha_train=float(loss_settings.pop("alpha", _ALPHA)),  # type: ignore[arg-type]
        beta=float(loss_settings.pop("beta", _BETA)),  # type: ignore[arg-type]
        detach_weights=bool(loss_settings.pop("detach_weights", False)),
        normalize_weights=bool(loss_settings.pop("normalize_weights", False)),
        attack=AttackConfig(eps=eps, step_size=step_size, steps=steps, restarts=1, start=start, norm=norm),
        epochs=epochs, batch_size=max(len(y), 1), lr=0.0, momentum=0.0, weight_decay=0.0, milestones=(), gamma=1.0,
        augment=False, seed=0, data_dir="", checkpoint_dir="", device=str(device), precision=precision_,
        attack_mode=parse_enum(AttackMode, attack_mode, "attack_mode"), **loss_settings,  # type: ignore[arg-type]
    )
    check_spec(get_defense(defense), cfg)  # e.g. GAIRAT's steps >= 2, before any work
    objective, margin = train_step(model, x, y, cfg, generator, precision_, epoch=epoch)  # type: ignore[arg-type]
    return LossResult(objective.loss, objective.weights.detach(), margin.detach())


def pgd_at(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, alpha: float = _ALPHA,
    detach_weights: bool = False, normalize_weights: bool = False, start: str = Start.NORMAL.value,
    norm: str = "linf", attack_mode: str = "eval", generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> LossResult:
    """PGD-AT (Madry et al.), "+ours" when ``alpha > 0``: ``(1/m) sum_i s_i * CE(f(x'_i), y_i)``.

    ``x'``: (weighted, same ``alpha``) PGD on CE, ``steps`` of ``step_size`` in the ``eps``-ball,
    from ``start`` (``"normal"``: x + 0.001 N(0, I), Algorithm 1; ``"uniform"``: Madry's).
    ``s_i = exp(-alpha * margin(f(x'_i), y_i))`` from the train-mode logits, kept in the graph
    (the authors' default); ``detach_weights=True`` detaches it, ``normalize_weights=True``
    divides by ``sum s`` (detached) instead of m. ``alpha = 0`` is plain PGD-AT.
    """
    return _run(Defense.PGD, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, alpha=alpha,
                detach_weights=detach_weights, normalize_weights=normalize_weights)


def trades(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, alpha: float = _ALPHA,
    beta: float = _BETA, detach_weights: bool = False, normalize_weights: bool = False,
    start: str = Start.NORMAL.value, norm: str = "linf", attack_mode: str = "eval",
    generator: torch.Generator | None = None, precision: str = "fp32",
) -> LossResult:
    """TRADES (Zhang et al.), "+ours" when ``alpha > 0``:
    ``(1/m) sum_i CE(f(x_i), y_i) + beta * (1/m) sum_i s_i * KL(p(x_i) || p(x'_i))``.

    ``x'``: (weighted) PGD on the KL term, as in :func:`pgd_at`; the weight multiplies the KL term
    only; ``beta`` is 1/lambda (6 in the paper's MNIST and Tiny ImageNet settings, 5 on CIFAR-10:
    the default, as every default here, is the library's, :mod:`wmrbench.core.defaults`).
    """
    return _run(Defense.TRADES, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, alpha=alpha, beta=beta,
                detach_weights=detach_weights, normalize_weights=normalize_weights)


def mart(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, beta: float = _BETA,
    start: str = Start.NORMAL.value, norm: str = "linf", attack_mode: str = "eval",
    generator: torch.Generator | None = None, precision: str = "fp32",
) -> LossResult:
    """MART (Wang et al., ICLR 2020): boosted CE at x' + ``beta`` * (1 - p_y(x)) * KL(p(x) || p(x')).
    ``weights`` are ``1 - p_y(x)`` (:mod:`wmrbench.defenses.mart`)."""
    return _run(Defense.MART, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, beta=beta)


def gairat(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, gair_lambda: float = -1.0,
    epoch: int = 0, burn_in: int = 0, start: str = Start.NORMAL.value, norm: str = "linf",
    attack_mode: str = "eval", generator: torch.Generator | None = None, precision: str = "fp32",
) -> LossResult:
    """GAIRAT (Zhang et al., ICLR 2021): CE at x' weighted by ``(1 + tanh(gair_lambda + 5 (1 - 2
    kappa / steps))) / 2``, normalized to mean 1, kappa the attack steps each example survived
    (``steps`` >= 2). Before ``burn_in`` epochs (``epoch`` is 0-based) the weights are 1
    (:mod:`wmrbench.defenses.gairat`)."""
    return _run(Defense.GAIRAT, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, epoch=epoch, burn_in=burn_in,
                gair_lambda=gair_lambda)


def mail_at(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, mail_bias: float = -1.5,
    mail_slope: float = 1.0, epoch: int = 0, burn_in: int = 0, start: str = Start.NORMAL.value,
    norm: str = "linf", attack_mode: str = "eval", generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> LossResult:
    """MAIL on PGD-AT (Wang et al., NeurIPS 2021): CE at x' weighted by ``3 * sigmoid(mail_slope *
    (-margin + mail_bias))`` (detached); weights 1 before ``burn_in`` epochs
    (:mod:`wmrbench.defenses.mail`)."""
    return _run(Defense.MAIL_AT, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, epoch=epoch, burn_in=burn_in,
                mail_bias=mail_bias, mail_slope=mail_slope)


def mail_trades(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float = _EPS, step_size: float | None = None,
    steps: int = _STEPS, beta: float = _BETA,
    mail_bias: float = -1.5, mail_slope: float = 1.0, epoch: int = 0, burn_in: int = 0,
    start: str = Start.NORMAL.value, norm: str = "linf", attack_mode: str = "eval",
    generator: torch.Generator | None = None, precision: str = "fp32",
) -> LossResult:
    """MAIL on TRADES: TRADES' KL term weighted by MAIL's ``3 * sigmoid(mail_slope * (-margin +
    mail_bias))`` (detached); weights 1 before ``burn_in`` epochs (:mod:`wmrbench.defenses.mail`)."""
    return _run(Defense.MAIL_TRADES, model, x, y, eps=eps, step_size=step_size, steps=steps, start=start, norm=norm,
                attack_mode=attack_mode, generator=generator, precision=precision, beta=beta, epoch=epoch,
                burn_in=burn_in, mail_bias=mail_bias, mail_slope=mail_slope)
