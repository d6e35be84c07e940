"""MART (Wang, Zou, Yi, Bailey, Ma, Gu; ICLR 2020): misclassification-aware adversarial training.

Followed: ``mart.py`` of github.com/YisenWang/MART (``mart_loss``), written here in our own words.
Per example, with ``p = softmax(f(x))`` and ``p' = softmax(f(x'))`` in train mode:

    BCE_i = CE(f(x'_i), y_i) - log(1.0001 - max_{k != y_i} p'_ik)
    l_i   = BCE_i + beta * (1 - p_{y_i}(x_i)) * KL(p(x_i) || p'(x'_i))

and the loss is ``(1/m) sum_i l_i``. The training attack is PGD on CE from x + 0.001 * N(0, I)
in eval mode (the authors' ``mart_loss``). The weight ``1 - p_y(x)`` is kept in the graph, as
in the authors' code; it is what makes MART an instance-reweighting method: examples the model
gets wrong (or nearly) count more in the KL term.

Differences from the authors' code (docs/definitions.md, "MART"): the KL is computed from
log-probabilities on both sides (as :func:`wmrbench.defenses.objectives.trades_objective`, for the same
reason: no NaN gradient when a probability underflows) instead of ``log(p' + 1e-12)``, and the
weight is ``1 - p_y`` instead of ``1.0000001 - p_y``; both change values below float32's
resolution except for saturated probabilities. The "boosted" term keeps the authors' 1.0001,
which caps it where the attack has fully fooled the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wmrbench.attacks import upcast
from wmrbench.core.attack_config import InnerLoss
from wmrbench.core.config import Defense, TrainConfig
from wmrbench.defenses.base import DefenseSpec, LossInputs
from wmrbench.defenses.registry import register_defense
from wmrbench.defenses.objectives import Objective

BOOST_FLOOR = 1.0001  # the authors' log(1.0001 - p): finite when the runner-up takes all the mass


def runner_up_probability(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{k != y} softmax(logits)_k`` per example (the most likely wrong class's probability)."""
    p = upcast(logits).softmax(dim=1)
    is_label = torch.arange(p.shape[1], device=y.device) == y[:, None]
    return p.masked_fill(is_label, float("-inf")).amax(dim=1)


def mart_objective(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, *, beta: float) -> Objective:
    """MART's loss (see the module); ``weights`` are ``1 - p_y(x)``, detached, for logging."""
    boosted = F.cross_entropy(upcast(logits_adv), y, reduction="none") - torch.log(
        BOOST_FLOOR - runner_up_probability(logits_adv, y)
    )
    log_p_nat = F.log_softmax(upcast(logits_nat), dim=1)
    kl = F.kl_div(F.log_softmax(upcast(logits_adv), dim=1), log_p_nat, reduction="none", log_target=True).sum(dim=1)
    weight = 1.0 - log_p_nat.gather(1, y[:, None]).squeeze(1).exp()
    return Objective((boosted + beta * weight * kl).mean(), weight.detach())


def _loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    assert batch.logits_nat is not None
    return mart_objective(batch.logits_nat, batch.logits_adv, batch.y, beta=cfg.beta)


register_defense(DefenseSpec(
    Defense.MART.value, "Wang et al. MART: boosted CE at x' + beta * (1 - p_y(x)) * KL(p(x) || p(x'))",
    InnerLoss.CE, natural_forward=True, loss=_loss,
))
