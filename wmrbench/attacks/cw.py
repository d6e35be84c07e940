"""(Weighted) margin PGD (``pgd-cw``): PGD on the logit margin ``max_{t != y} z_t - z_y``.

The loss is Carlini and Wagner's (2017, "Towards Evaluating the Robustness of Neural Networks",
objective f_6, untargeted and without the confidence clamp) as PGD ascends it in "PGD-CW"
(e.g. Croce and Hein 2020, section 2, who contrast it with the DLR loss; Madry et al.'s
``mnist_challenge`` ``pgd_attack.py`` ``loss_func="cw"``). It depends on the logits, not the
softmax: scaling the logits by a constant scales its gradient and leaves every signed step the
same, so a saturated softmax cannot hide the gradient from it.

Weighted form: ``sum_i s_i * l_i`` with ``s_i = exp(-alpha * margin_i)`` in the graph, through the
same step tail as weighted PGD (:func:`.pgd.ascend`). The raw margin loss is negative while an
example is correct, and a weight multiplying a negative loss would have its gradient push the
margin *up* (the reason weighted APGD-DLR adds 1, :mod:`.apgd`). The logit margin has no lower
bound, so ``l_i`` is the margin shifted by a detached per-example constant, ``d + (1 - min(d, 0))``:
its value is ``max(d, 0) + 1 >= 1`` and its gradient is exactly that of ``d``. Unweighted, the
steps are those of PGD on ``d`` itself, and at ``alpha = 0`` the weighted form equals them bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench.attacks.objective import Alpha, AttackResult, upcast
from wmrbench.attacks.pgd import ascend, run_steps
from wmrbench.attacks.registry import register_attack
from wmrbench.attacks.stepper import Forward, StepInputs
from wmrbench.core.attack_config import AttackConfig, Precision


def logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{t != y} z_t - z_y`` per example: negative while correct, positive once misclassified."""
    z = upcast(logits)
    is_label = torch.arange(z.shape[1], device=y.device) == y[:, None]
    return z.masked_fill(is_label, float("-inf")).amax(dim=1) - z.gather(1, y[:, None]).squeeze(1)


def cw_loss(logits: Tensor, y: Tensor) -> Tensor:
    """The ascended loss: :func:`logit_margin` shifted to ``>= 1`` by a detached constant (its
    gradient is the margin's; see the module docstring for why a weighted ascent needs it)."""
    d = logit_margin(logits, y)
    return d + (1.0 - d.detach().clamp(max=0.0))


@dataclass(frozen=True)
class MarginStep:
    """One PGD step on :func:`cw_loss`."""

    def __call__(self, forward: Forward, x_adv: Tensor, inputs: StepInputs) -> Tensor:
        x_adv = x_adv.detach().requires_grad_(True)
        logits = forward(x_adv)
        return ascend(x_adv, logits, cw_loss(logits, inputs.y), inputs)


@register_attack("pgd-cw", "(weighted) PGD on the CW logit margin max_{t != y} z_t - z_y")
def pgd_cw(
    model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, *, alpha: Alpha = None,
    generator: torch.Generator | None = None, index: Tensor | None = None, seed: int = 0,
    precision: Precision | str = Precision.FP32, cuda_graph: bool | None = None, compile_model: bool = False,
) -> AttackResult:
    """(Weighted) PGD on the logit margin with ``attack``'s eps, step size, steps, restarts,
    start and norm; restarts chosen among as :func:`.pgd.pgd`'s. Options as :func:`.pgd.pgd`."""
    return run_steps(MarginStep(), model, x, y, attack, alpha=alpha, generator=generator, index=index, seed=seed,
                     precision=precision, cuda_graph=cuda_graph, compile_model=compile_model)
