"""Training objectives (docs/definitions.md, section 5), per mini-batch of m examples.

* PGD-AT:  (1/m) sum_i s_i * CE(f(x'_i), y_i)
* TRADES:  (1/m) sum_i CE(f(x_i), y_i) + beta * (1/m) sum_i s_i * KL(p(x_i) || p(x'_i))

``s_i = exp(-alpha * margin(f(x'_i), y_i))`` is computed from the training-mode logits at x' and,
as in the authors' code, stays in the graph (``detach_weights=False``) so that the weight itself
is learned; ``normalize_weights`` divides by ``sum_i s_i`` (detached) instead of m.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from wmrbench.attacks import importance_weights


@dataclass
class Objective:
    loss: Tensor  # scalar to minimise
    weights: Tensor  # s_i, detached, for logging


def weights_for(logits_adv: Tensor, y: Tensor, alpha: float, detach: bool) -> Tensor:
    s = importance_weights(logits_adv, y, alpha)
    return s.detach() if detach else s


def weighted_mean(per_example: Tensor, s: Tensor, normalize: bool) -> Tensor:
    if normalize:
        return (s * per_example).sum() / s.detach().sum()
    return (s * per_example).mean()


def pgd_at_objective(
    logits_adv: Tensor, y: Tensor, *, alpha: float, detach_weights: bool = False,
    normalize_weights: bool = False,
) -> Objective:
    s = weights_for(logits_adv, y, alpha, detach_weights)
    ce = F.cross_entropy(logits_adv.float(), y, reduction="none")
    return Objective(weighted_mean(ce, s, normalize_weights), s.detach())


def trades_objective(
    logits_nat: Tensor, logits_adv: Tensor, y: Tensor, *, alpha: float, beta: float,
    detach_weights: bool = False, normalize_weights: bool = False,
) -> Objective:
    s = weights_for(logits_adv, y, alpha, detach_weights)
    natural = F.cross_entropy(logits_nat.float(), y)
    # KL(p(x) || p(x')) per example; p(x) is not detached, as in TRADES. Both sides are given as
    # log-probabilities: with p(x) as probabilities, a class whose p(x) underflows to 0 (a logit
    # gap above ~104 in float32) has d KL / d p = log 0 + 1 = -inf, and softmax's backward turns
    # 0 * -inf into NaN: the whole model went NaN in one step. Through log p(x) every term of the
    # gradient is finite, and the value is the same.
    kl = F.kl_div(
        F.log_softmax(logits_adv.float(), dim=1), F.log_softmax(logits_nat.float(), dim=1), reduction="none",
        log_target=True,
    ).sum(dim=1)
    return Objective(natural + beta * weighted_mean(kl, s, normalize_weights), s.detach())
