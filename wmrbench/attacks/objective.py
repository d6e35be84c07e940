"""What every attack maximises and how its result is scored (docs/definitions.md, sections 2-3).

* ``margin = p_y - max_{t != y} p_t`` with ``p = softmax(logits)``, in [-1, 1];
* ``s = exp(-alpha * margin)`` at the adversarial point, with the true label;
* the per-example inner loss ``l_i``: CE, or TRADES' ``KL(p(x) || p(x'))`` summed over classes;
  APGD may also ascend Croce and Hein's DLR loss (:func:`dlr_loss`);
* the per-example choice among restarts and attacks (:func:`choose_among`): a misclassified
  candidate with the lowest margin, else the highest margin, which is the attacker's best choice
  for every alpha at once; or, as the authors' evaluation chooses among restarts
  (``restart_rule="max-ce"``, :func:`choose_max_ce`), the highest cross-entropy, ties to the later.

Also the model-side helpers every attack shares: :func:`attack_mode` (eval mode, frozen
parameters), :func:`autocast` (the ``precision`` setting as an autocast context) and
:func:`predict`. Logits of reduced precision (bf16 autocast) are upcast to float32 before any
softmax or loss; float64 is kept (the benchmarks' exactness check runs in float64).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.core.attack_config import STABLE_ALPHA, InnerLoss, Precision
from wmrbench.core.checks import parse_enum
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.runtime import autocast_dtype

Alpha = float | Tensor | None


@dataclass
class AttackResult:
    x_adv: Tensor  # adversarial inputs, in the eps-ball (L-infinity or L2) around x and in [0, 1]
    logits: Tensor  # logits of the model (eval mode) at x_adv: float32 (float64 for float64 models)
    margin: Tensor  # margin at x_adv with the true label, in the logits' dtype
    # int64 per example: the 0-based restart whose point was kept; None (the default) means a
    # single candidate and becomes zeros, so an attack without restarts need not build it.
    restart: Tensor = None  # type: ignore[assignment]
    # Under restart_rule "max-ce" only: the candidate the weighted rule keeps among the SAME
    # restarts (one attack run, both choices: ``reproduce table1`` reports both). None otherwise.
    weighted_pick: AttackResult | None = None
    # int64 per example, only when asked (``pgd(count_survived=True)``, GAIRAT's kappa): of the
    # kept restart's steps, how many started from a point the model still classified correctly.
    survived: Tensor | None = None

    def __post_init__(self) -> None:
        if self.restart is None:
            self.restart = torch.zeros(self.margin.shape, dtype=torch.int64, device=self.margin.device)


def upcast(logits: Tensor) -> Tensor:
    """float32 for bf16/fp16 logits (autocast); float32 and float64 are left as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """``p_y - max_{t != y} p_t``: positive when correct, negative when misclassified."""
    p = upcast(logits).softmax(dim=1)
    p_y = p.gather(1, y[:, None]).squeeze(1)
    # A comparison, not F.one_hot: one_hot validates labels with a host sync on some devices,
    # which would also break CUDA graph capture.
    is_label = torch.arange(p.shape[1], device=y.device) == y[:, None]
    p_other = p.masked_fill(is_label, float("-inf")).amax(dim=1)
    return p_y - p_other


def importance_weights(logits: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
    """``s = exp(-alpha * margin)``; differentiable in logits (detach at the call site if wanted)."""
    return torch.exp(-alpha * margin(logits, y))


def step_weights(logits: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
    """The weight as an ascent step needs it: ``s_i`` up to a positive per-example factor.

    The gradient of ``s_i * l_i`` with respect to example i's input is
    ``s_i * (grad l_i - alpha * l_i * grad m_i)``: a step that uses only its direction per example
    (the sign for L-infinity, the normalized gradient for L2) does not see the factor ``s_i``.
    Above :data:`wmrbench.core.attack_config.STABLE_ALPHA` (40), ``exp(-alpha * margin)`` overflows to inf
    (a NaN step) or underflows to 0 (no step at all) in float32, so there the weight is ``exp(-alpha * (m_i - m_i.detach()))``:
    its value is 1, its gradient ``-alpha * grad m_i``, and the step is the same as with ``s_i``,
    with no overflow at any alpha. At or below it (every alpha the paper uses) the weight is
    :func:`importance_weights` bit for bit. Not for values that are compared or summed across
    examples: those need ``s_i`` itself (see :func:`.metrics.normalized_weights`).
    """
    m = margin(logits, y)
    if isinstance(alpha, Tensor):  # per-example alphas (stacked attacks): a shift of exactly 0 below the bound
        shift = torch.where(alpha > STABLE_ALPHA, m.detach(), torch.zeros_like(m))
        return torch.exp(-alpha * (m - shift))
    if alpha > STABLE_ALPHA:
        return torch.exp(-alpha * (m - m.detach()))
    return torch.exp(-alpha * m)


def inner_loss(
    logits: Tensor, y: Tensor, loss: InnerLoss | str, natural_probs: Tensor | None
) -> Tensor:
    """Per-example loss the attack ascends: CE, or TRADES' KL(p(x) || p(x')) summed over classes."""
    loss = parse_enum(InnerLoss, loss, "loss")
    logits = upcast(logits)
    if loss is InnerLoss.CE:
        return F.cross_entropy(logits, y, reduction="none")
    if natural_probs is None:
        raise ValueError("the KL inner loss needs natural_logits (the model's logits at x)")
    return F.kl_div(F.log_softmax(logits, dim=1), natural_probs, reduction="none").sum(dim=1)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Croce and Hein's (2020) Difference of Logits Ratio, per example:
    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)``, ``z_pi1 >= z_pi2 >= ...`` the sorted
    logits. It is at least -1: in [-1, 0] while the example is correct, positive once it is not
    (above 1 when z_y is below z_pi3), and it does not change when the logits are shifted or
    scaled. Needs at least 3 classes.

    Written like pyautoattack's ``APGDAttack.dlr_loss`` (one sort, the runner-up taken from the
    sorted logits) so that the values and gradients are the same.
    """
    z = upcast(logits)
    if z.shape[1] < 3:
        raise WmrbenchError(f"the DLR loss needs at least 3 classes; the model has {z.shape[1]}")
    z_sorted, order = z.sort(dim=1)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    # The best other class: the runner-up if y is on top, else the top class.
    z_other = torch.where(order[:, -1] == y, z_sorted[:, -2], z_sorted[:, -1])
    return -(z_y - z_other) / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def _take(best: AttackResult, new: AttackResult, take_new: Tensor) -> AttackResult:
    """Per example, ``new`` where ``take_new`` else ``best`` (a device-side ``torch.where``)."""
    return AttackResult(
        x_adv=torch.where(take_new.view(-1, *[1] * (new.x_adv.dim() - 1)), new.x_adv, best.x_adv),
        logits=torch.where(take_new[:, None], new.logits, best.logits),
        margin=torch.where(take_new, new.margin, best.margin),
        restart=torch.where(take_new, new.restart, best.restart),
    )


def choose_among(best: AttackResult, new: AttackResult, y: Tensor) -> AttackResult:
    """Per example, the better of two candidates (restarts, later attacks) for the same inputs.

    A misclassified candidate (``argmax != y``) beats a correct one; of two misclassified ones
    the lower margin wins, of two correct ones the *higher* margin. A tie keeps ``best`` (the
    earlier candidate), so folding this over the candidates in order picks the earliest best.

    Why the higher margin for a correct example: with ``A = sum_i s_i c_i / sum_i s_i`` and
    ``s_i = exp(-alpha * margin_i)``, ``dA/ds_i = (c_i - A) / sum_j s_j``, so the attacker
    wants a large weight on a misclassified example and a *small* one on a correct example. The
    rule is the best for A_sa and A_tr at every alpha at once, and for A_rob it changes nothing.
    No host sync: the choice is a device-side ``torch.where``.
    """
    best_wrong = best.logits.argmax(dim=1) != y
    new_wrong = new.logits.argmax(dim=1) != y
    take_new = torch.where(
        new_wrong, ~best_wrong | (new.margin < best.margin), ~best_wrong & (new.margin > best.margin)
    )
    return _take(best, new, take_new)


def choose_max_ce(best: AttackResult, new: AttackResult, y: Tensor) -> AttackResult:
    """Per example, the candidate with the higher cross-entropy ``CE(logits, y)``; a tie goes to
    ``new`` (the later restart).

    This is how the authors' evaluation keeps a point among its restarts
    (``TRADES_base/PGD_on_the_fly_attack_correct.py`` in huiminzeng/Are_Adversarial_Examples_Created_Equal:
    ``max_delta[all_loss >= max_loss_pgd] = delta``): ``restart_rule="max-ce"``, so that a
    comparison with the paper measures like with like. It is a weaker attacker than
    :func:`choose_among` for the weighted metrics (the highest CE is the lowest ``p_y``, not the
    weight the metric cares about), and with 3 or more classes it can even keep a correct point
    over a misclassified one (``p_y`` 0.3 with the rest spread out has the higher CE than ``p_y``
    0.4 beside one class at 0.5), so A_rob is not guaranteed to equal the weighted rule's.
    """
    take_new = F.cross_entropy(upcast(new.logits), y, reduction="none") >= F.cross_entropy(
        upcast(best.logits), y, reduction="none"
    )
    return _take(best, new, take_new)


@contextlib.contextmanager
def attack_mode(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Eval mode (BatchNorm frozen, dropout off) and no parameter gradients, restored after.

    Freezing the parameters means autograd neither computes nor stores anything for weight
    gradients: the backward pass only propagates to the input. ``train=True`` keeps train mode
    (batch statistics, dropout on), as the authors' PGD-AT code attacks: an option, not the
    paper's Algorithm 1.
    """
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.train(train)
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


def autocast(
    device_type: str, precision: Precision | str, cache_enabled: bool = True
) -> contextlib.AbstractContextManager:
    """The model's forward at ``precision``: bf16 autocast for ``bf16``, nothing for ``fp32``.

    ``cache_enabled=False`` inside CUDA graphs: autocast's weight-cast cache must not hand a
    captured graph a cast made outside it (it would go stale when the weights change).
    """
    dtype = autocast_dtype(parse_enum(Precision, precision, "precision"))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype, cache_enabled=cache_enabled)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, precision: Precision | str = Precision.FP32) -> Tensor:
    """Logits (float32; float64 for a float64 model) in eval mode at x, no gradients; the mode
    is restored."""
    was_training = model.training
    model.eval()
    try:
        with autocast(x.device.type, precision):
            logits = model(x)
        return upcast(logits)
    finally:
        model.train(was_training)
