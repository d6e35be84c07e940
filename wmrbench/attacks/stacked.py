"""One training attack for several runs at once: (weighted) PGD where each example carries its
own run's inner loss (CE or TRADES' KL) and alpha (:mod:`wmrbench.training.stacked`).

The runs of a stacked sweep attack their own copies of the same batch, side by side in one batch
of ``runs * batch`` examples: ``model`` maps that batch to its logits (each run's block of rows
through that run's weights). What :func:`.pgd.pgd` does for one run, this does for every run in
one step: the per-example loss is CE or KL by a per-example mask (``torch.where``, so each row's
value and gradient are exactly its own loss's), the weight ``s_i`` is :func:`step_weights` with a
per-example alpha (alpha 0 gives the plain step exactly, as ``pgd``'s ``alpha=None`` does), and the
L-infinity step and clamp are :func:`.pgd._step`'s. The starts are given (each run draws its own
from its own generator, as alone), and there is one restart, as in training.

The steps run through :func:`.stepper.make_stepper`, so on CUDA they replay one captured CUDA
graph, exactly as a solo run's training attack does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench.attacks.objective import (
    AttackResult, attack_mode, inner_loss, margin, predict, step_weights, upcast,
)
from wmrbench.attacks.stepper import Forward, StepInputs, make_stepper, model_forward, use_cuda_graph
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Norm, Precision
from wmrbench.core.checks import parse_enum


@dataclass
class MixedStepInputs(StepInputs):
    """:class:`StepInputs` with a per-example choice of the inner loss."""

    kl: Tensor | None = None  # bool per example: True where the row ascends KL, False where CE


def _mixed_step(forward: Forward, x_adv: Tensor, inputs: StepInputs) -> Tensor:
    """One L-infinity ascent step on ``sum_i s_i * l_i`` with ``l_i`` CE or KL per example."""
    assert isinstance(inputs, MixedStepInputs) and inputs.lower is not None and inputs.upper is not None
    x_adv = x_adv.detach().requires_grad_(True)
    logits = forward(x_adv)
    ce = inner_loss(logits, inputs.y, InnerLoss.CE, None)
    if inputs.kl is None:
        per_example = ce
    else:
        kl = inner_loss(logits, inputs.y, InnerLoss.KL, inputs.natural_probs)
        per_example = torch.where(inputs.kl, kl, ce)
    per_example = step_weights(logits, inputs.y, inputs.alpha) * per_example
    (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
    return torch.clamp(x_adv.detach().add(grad.sign(), alpha=inputs.step_size), inputs.lower, inputs.upper)


def mixed_pgd(
    model: nn.Module, x: Tensor, y: Tensor, x_start: Tensor, attack: AttackConfig, *,
    alpha: Tensor, kl: Tensor | None, natural_logits: Tensor | None,
    precision: Precision | str = Precision.FP32, cuda_graph: bool | None = None,
) -> AttackResult:
    """``attack.steps`` L-infinity steps from ``x_start``; one restart; model in eval mode.

    ``x``, ``y``, ``x_start``: every run's block of rows, one after the other. ``alpha``: float32
    per example. ``kl``: bool per example (None: CE everywhere); ``natural_logits``: the model's
    logits at ``x`` (needed where ``kl``). Returns the end points with their eval-mode logits
    and margins, like :func:`.pgd.pgd`.
    """
    if parse_enum(Norm, attack.norm, "norm") is not Norm.LINF or attack.restarts != 1:
        raise ValueError("mixed_pgd takes L-infinity attacks with one restart (training attacks)")
    precision = parse_enum(Precision, precision, "precision")
    x = x.detach()
    natural_probs = None
    if kl is not None:
        if natural_logits is None:
            raise ValueError("a KL row needs natural_logits")
        natural_probs = upcast(natural_logits.detach()).softmax(dim=1)
    lower, upper = (x - attack.eps).clamp_(min=0.0), (x + attack.eps).clamp_(max=1.0)
    inputs = MixedStepInputs(y, lower, upper, attack.step_size, InnerLoss.KL if kl is not None else InnerLoss.CE,
                             natural_probs, alpha.to(device=x.device, dtype=torch.float32), kl=kl)
    graph = use_cuda_graph(x, cuda_graph)
    forward = model_forward(model, x.device.type, precision, False, in_graph=graph)
    stepper = make_stepper(_mixed_step, forward, inputs, model=model, graph=graph, precision=precision,
                           compiled=False)
    with attack_mode(model):
        x_adv = stepper.run(x_start, attack.steps).detach()
        logits = predict(model, x_adv, precision)
    return AttackResult(x_adv, logits, margin(logits, y))
