"""(Weighted) APGD: Croce and Hein's Auto-PGD (ICML 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks") on the objective of Zeng et al.

APGD ascends ``sum_i f_i`` with momentum 0.75 and a per-example step size that starts at
``2 * eps`` and is halved at checkpoints when the steps stopped paying off; a halved example
goes back to the best point it has seen. wmrbench's per-example objective is
``f_i = s_i * l_i`` with ``s_i = exp(-alpha * margin_i)`` kept in the autograd graph (as in
weighted PGD, :mod:`.pgd`), so alpha changes every step's direction and also which point
counts as the best; ``alpha = None`` is plain APGD and ``alpha = 0`` reproduces it bit for bit
(``s = 1`` exactly and the weight's gradient is an exact zero).

``l_i`` is the cross-entropy, or the DLR loss plus 1 (:func:`.objective.dlr_loss` is at least
-1 and negative while an example is correct: a weight multiplying a negative loss would have its
gradient push the margin *up*; the shift by 1 makes it nonnegative and changes no gradient, and
no comparison beyond float rounding).

The schedule is pyautoattack's (``APGDAttack.attack_single_run``), constant for constant, so that
at alpha 0 and from the same start the two find the same points (tests/attacks/test_apgd.py):

* checkpoints after ``k_0 = max(int(0.22 n), 1)`` iterations, then windows shrinking by
  ``max(int(0.03 n), 1)`` down to ``max(int(0.06 n), 1)`` (n = ``attack.steps``);
* at a checkpoint an example's step is halved if at most ``0.75 * k`` of the window's steps raised
  its objective, or if the step was not halved at the previous checkpoint and the best objective
  has not risen since; a halved example restarts from its best point and that point's gradient;
* the first step counts as a success when its objective exceeds that of a zero loss (``0`` for
  CE, ``1`` for the shifted DLR): pyautoattack compares it with an unwritten row of zeros
  (``loss_steps[-1]``), where the paper compares with the start's objective;
* L2 steps along ``grad / (||grad|| + 1e-12)`` and projects as pyautoattack writes it
  (:func:`_project`), not through :mod:`.norms`: the same points up to rounding, but APGD's
  comparisons and halvings would amplify rounding into different iterates.

Each restart yields one point per example: the misclassified iterate with the lowest margin if
any iterate was misclassified (the start included), else the iterate with the highest objective
(APGD's best point). Restarts are then chosen among like PGD's (``attack.restart_rule``: :func:`.objective.choose_among`
or :func:`.objective.choose_max_ce`).
Everything per example is tensor arithmetic: no host syncs inside an attack; the checkpoint
iterations depend only on n and are known up front. APGD runs eagerly (no CUDA graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.attacks.objective import (
    Alpha, AttackResult, attack_mode, dlr_loss, importance_weights, margin, upcast,
)
from wmrbench.attacks.pgd import _restarts
from wmrbench.attacks.registry import register_attack
from wmrbench.attacks.stepper import Forward, model_forward
from wmrbench.core.attack_config import AttackConfig, Norm, Precision, check_apgd_alpha
from wmrbench.core.checks import parse_enum

MOMENTUM = 0.75  # weight of the new step; 1 - MOMENTUM on the previous displacement
RHO = 0.75  # a window with at most RHO * k objective-raising steps halves the step


class ApgdLoss(str, Enum):
    CE = "ce"  # cross-entropy
    DLR = "dlr"  # Croce and Hein's difference of logits ratio (+ 1, see the module docstring)


# The objective of a zero loss, per loss: what the first step is compared with (see above).
_ZERO_LOSS = {ApgdLoss.CE: 0.0, ApgdLoss.DLR: 1.0}


def checkpoints(n_iter: int) -> dict[int, int]:
    """``{iteration: window length}`` for the checks after each window, as pyautoattack places
    them (0-based iterations; a check runs after that iteration's gradient)."""
    k = max(int(0.22 * n_iter), 1)
    k_min, decrease = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    checks, i = {}, k - 1
    while i < n_iter:
        checks[i] = k
        k = max(k - decrease, k_min)
        i += k
    return checks


@dataclass
class _Ascent:
    """Everything one APGD run keeps per example (all tensors have the batch first)."""

    x: Tensor  # current iterate
    x_old: Tensor  # the iterate the last step started from (momentum)
    grad: Tensor  # gradient of the objective at x
    f_prev: Tensor  # objective at the last computed iterate
    x_max: Tensor  # best iterate (highest objective), its gradient and objective
    grad_max: Tensor
    f_max: Tensor
    step: Tensor  # step size, shaped to broadcast against x
    raised: Tensor  # steps since the last checkpoint that raised the objective
    f_max_at_check: Tensor  # f_max at the last checkpoint
    halved_at_check: Tensor  # bool: halved at the last checkpoint (True before the first)
    wrong: Tensor  # bool: some iterate was misclassified
    x_wrong: Tensor  # the misclassified iterate with the lowest margin so far, and its margin
    m_wrong: Tensor


@dataclass
class _Setup:
    """What every step reads besides the state: fixed for one attack call."""

    forward: Forward
    x: Tensor  # the clean inputs: the ball's centre
    y: Tensor
    eps: float
    norm: Norm
    loss: ApgdLoss
    alpha: Alpha
    lower: Tensor | None  # L-infinity: the eps-box intersected with [0, 1]
    upper: Tensor | None


def _evaluate(setup: _Setup, x_adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(f, logits, grad)`` at x_adv: the per-example objective and its input gradient."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = upcast(setup.forward(x_adv))
    if setup.loss is ApgdLoss.CE:
        f = F.cross_entropy(logits, setup.y, reduction="none")
    else:
        f = dlr_loss(logits, setup.y) + 1.0
    if setup.alpha is not None:
        # The weight stays in the graph: its gradient is part of the step direction.
        f = importance_weights(logits, setup.y, setup.alpha) * f
    (grad,) = torch.autograd.grad(f.sum(), x_adv)
    return f.detach(), logits.detach(), grad


def _l2_norm(t: Tensor) -> Tensor:
    # pyautoattack's L2_norm: sqrt(sum(t ** 2)) per example (not torch.linalg.vector_norm, whose
    # rounding differs), shaped to broadcast.
    return (t**2).flatten(1).sum(-1).sqrt().view(-1, *[1] * (t.dim() - 1))


def _project(setup: _Setup, point: Tensor) -> Tensor:
    """Onto the ball around x, then [0, 1]. L2 as pyautoattack writes it,
    ``x + d / (||d|| + 1e-12) * min(eps, ||d||)``: :func:`.norms.project_l2` gives the same point up
    to rounding, but APGD's comparisons and halvings amplify rounding into different iterates."""
    if setup.norm is Norm.L2:
        d = point - setup.x
        norm = _l2_norm(d)
        return (setup.x + d / (norm + 1e-12) * norm.clamp(max=setup.eps)).clamp_(0.0, 1.0)
    return torch.clamp(point, setup.lower, setup.upper)


def _move(setup: _Setup, s: _Ascent, a: float) -> Tensor:
    """The momentum step: z = P(x + step * direction), then P(x + a (z - x) + (1 - a) (x - x_old)).

    Written in pyautoattack's order of operations (also ``a = 1`` at the first iteration, where
    ``x + (z - x)`` may round differently from z), so that the iterates are the same bits.
    """
    if setup.norm is Norm.L2:
        direction = s.grad / (_l2_norm(s.grad) + 1e-12)
    else:
        direction = s.grad.sign()
    z = _project(setup, s.x + s.step * direction)
    return _project(setup, s.x + (z - s.x) * a + (s.x - s.x_old) * (1 - a))


def _record(setup: _Setup, s: _Ascent, x_new: Tensor, f: Tensor, logits: Tensor, grad: Tensor) -> None:
    """Take in a new iterate: success count, best point, lowest-margin misclassified point."""
    s.raised = s.raised + (f > s.f_prev).to(s.raised.dtype)
    s.f_prev = f
    better = f > s.f_max
    s.x_max = torch.where(_rows(better, x_new), x_new, s.x_max)
    s.grad_max = torch.where(_rows(better, grad), grad, s.grad_max)
    s.f_max = torch.where(better, f, s.f_max)
    s.x, s.grad = x_new, grad
    m = margin(logits, setup.y)
    wrong_now = logits.argmax(dim=1) != setup.y
    take = wrong_now & (~s.wrong | (m < s.m_wrong))
    s.x_wrong = torch.where(_rows(take, x_new), x_new, s.x_wrong)
    s.m_wrong = torch.where(take, m, s.m_wrong)
    s.wrong = s.wrong | wrong_now


def _check(s: _Ascent, window: int) -> None:
    """A checkpoint: halve the step where the window's steps stopped paying off, and send those
    examples back to their best point (with its gradient)."""
    oscillating = s.raised <= window * RHO
    stalled = ~s.halved_at_check & (s.f_max_at_check >= s.f_max)
    halve = oscillating | stalled
    s.step = torch.where(_rows(halve, s.step), s.step / 2.0, s.step)
    s.x = torch.where(_rows(halve, s.x), s.x_max, s.x)
    s.grad = torch.where(_rows(halve, s.grad), s.grad_max, s.grad)
    s.halved_at_check, s.f_max_at_check = halve, s.f_max
    s.raised = torch.zeros_like(s.raised)


def _rows(flag: Tensor, like: Tensor) -> Tensor:
    """A per-example flag shaped to broadcast against ``like``."""
    return flag.view(-1, *[1] * (like.dim() - 1))


def _start(setup: _Setup, x_start: Tensor) -> _Ascent:
    f, logits, grad = _evaluate(setup, x_start)
    n = len(setup.y)
    m = margin(logits, setup.y)
    wrong = logits.argmax(dim=1) != setup.y
    step = torch.full((n, *[1] * (x_start.dim() - 1)), 2.0 * setup.eps, dtype=x_start.dtype, device=x_start.device)
    return _Ascent(
        x=x_start, x_old=x_start, grad=grad, f_prev=torch.full_like(f, _ZERO_LOSS[setup.loss]),
        x_max=x_start, grad_max=grad, f_max=f, step=step, raised=torch.zeros_like(f),
        f_max_at_check=f, halved_at_check=torch.ones_like(wrong), wrong=wrong, x_wrong=x_start,
        m_wrong=m,
    )


def run_from(setup: _Setup, x_start: Tensor, n_iter: int) -> _Ascent:
    """One APGD run of ``n_iter`` iterations from ``x_start``; the final state."""
    s = _start(setup, x_start)
    checks = checkpoints(n_iter)
    for i in range(n_iter):
        x_new = _move(setup, s, MOMENTUM if i > 0 else 1.0)
        s.x_old = s.x
        f, logits, grad = _evaluate(setup, x_new)
        _record(setup, s, x_new, f, logits, grad)
        if i in checks:
            _check(s, checks[i])
    return s


def _setup(
    model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, alpha: Alpha, loss: ApgdLoss,
    precision: Precision, compile_model: bool = False,
) -> _Setup:
    if isinstance(alpha, Tensor):
        alpha = alpha.to(device=x.device, dtype=torch.float32)
    forward = model_forward(model, x.device.type, precision, compile_model, in_graph=False)
    lower = upper = None
    if attack.norm is Norm.LINF:
        lower, upper = (x - attack.eps).clamp_(min=0.0), (x + attack.eps).clamp_(max=1.0)
    return _Setup(forward, x, y, attack.eps, attack.norm, loss, alpha, lower, upper)


@dataclass
class _ApgdStepper:
    """APGD as a :class:`.stepper.Stepper` (start point in, the run's point out), so that PGD's
    restart loop (fresh or chained starts, the choice among restarts) drives it unchanged."""

    setup: _Setup

    def run(self, x_adv: Tensor, steps: int) -> Tensor:
        s = run_from(self.setup, x_adv, steps)
        return torch.where(_rows(s.wrong, s.x_wrong), s.x_wrong, s.x_max)


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: AttackConfig,
    *,
    alpha: Alpha = None,
    loss: ApgdLoss | str = ApgdLoss.CE,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    seed: int = 0,
    precision: Precision | str = Precision.FP32,
    compile_model: bool = False,
) -> AttackResult:
    """(Weighted) APGD in the ``attack.norm`` ball of radius eps around x, intersected with [0, 1].

    ``attack.steps`` is APGD's iteration budget (n_iter: one gradient per iteration, plus one at
    the start); ``attack.step_size`` is *ignored*: APGD starts every example at ``2 * eps`` and
    halves it by its own schedule (module docstring). ``attack.restarts``, ``start``,
    ``restart_from`` and the keyed starts (``index``, ``seed``, else ``generator``) work as in
    :func:`.pgd.pgd`, and so does the choice among restarts (``result.restart`` says which won).
    ``alpha``: None for plain APGD; a float, or a per-example tensor of shape (N,) for stacked
    alphas (copies of x side by side). ``loss``: ``"ce"`` or ``"dlr"``. ``precision``: ``"fp32"``
    or ``"bf16"`` autocast; ``compile_model`` runs the model through ``torch.compile`` (no CUDA
    graph: APGD runs eagerly). The model runs in eval mode with gradients for the input only.

    Unlike pyautoattack's ``perturb``, every example is attacked (clean errors and examples an
    earlier restart already broke included), so an example's result does not depend on the others.
    """
    loss = parse_enum(ApgdLoss, loss, "loss")
    precision = parse_enum(Precision, precision, "precision")
    if alpha is not None:  # one check per call, not per step
        check_apgd_alpha(float(torch.as_tensor(alpha).max()), f"apgd-{loss.value}")
    x = x.detach()
    setup = _setup(model, x, y, attack, alpha, loss, precision, compile_model)
    with attack_mode(model):
        return _restarts(model, _ApgdStepper(setup), x, y, attack, generator, index, seed, precision)


@register_attack("apgd-ce", "(weighted) APGD on the cross-entropy (Croce and Hein 2020), L-infinity or L2")
def apgd_ce(model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, **options) -> AttackResult:
    """:func:`apgd` with ``loss="ce"``."""
    return apgd(model, x, y, attack, loss=ApgdLoss.CE, **options)


@register_attack("apgd-dlr", "(weighted) APGD on the DLR loss (Croce and Hein 2020), L-infinity or L2")
def apgd_dlr(model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, **options) -> AttackResult:
    """:func:`apgd` with ``loss="dlr"``."""
    return apgd(model, x, y, attack, loss=ApgdLoss.DLR, **options)
