"""MAIL (Wang, Liu, Han, Liu, Gong, Niu, Zhou, Sugiyama; NeurIPS 2021): margin-aware
instance reweighting, on PGD-AT (``mail-at``) and TRADES (``mail-trades``).

Followed: ``mail_loss.py`` (``PM``, ``weight_assign``, ``mail_loss``) and ``train.py`` (the
burn-in, bias and slope) of github.com/QizhouWang/MAIL, in our own words. With the probability
margin ``PM_i = max_{k != y} p'_ik - p'_{y_i}`` at the adversarial point (exactly minus the margin
this paper puts in exp(-alpha * margin)):

    w_i = 3 * sigmoid(slope * (PM_i + bias))      (detached: a weight, not a term to learn)
    mail-at:      (1/m) sum_i w_i * CE(f(x'_i), y_i)
    mail-trades:  (1/m) sum_i CE(f(x_i), y_i) + beta * (1/m) sum_i w_i * KL(p(x_i) || p(x'_i))

The factor 3 is the authors' fixed scale (their ``normalized_reweight = reweight * 3``), not a
per-batch normalization. The training attacks are the base defense's: PGD on CE for mail-at, on
TRADES' KL for mail-trades, from x + 0.001 * N(0, I) in eval mode.

Burn-in: the authors train the base defense first and start MAIL from its checkpoint (epoch 75
of 120, or 60 of any other length, in ``train.py``); here the first ``burn_in`` epochs use the
unweighted base loss (w = 1) in the same run, then MAIL's weight. Differences from the authors'
code (docs/definitions.md, "MAIL"): one continuous run instead of loading a checkpoint saved 5
epochs before the switch, and the KL in log-space, as for TRADES.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wmrbench.attacks import margin, upcast
from wmrbench.core.attack_config import InnerLoss
from wmrbench.core.config import Defense, TrainConfig
from wmrbench.defenses.base import DefenseSpec, LossInputs
from wmrbench.defenses.registry import register_defense
from wmrbench.defenses.objectives import Objective

WEIGHT_SCALE = 3.0  # the authors' fixed scale of the sigmoid weight


def mail_weights(logits_adv: Tensor, y: Tensor, *, bias: float, slope: float) -> Tensor:
    """``3 * sigmoid(slope * (PM + bias))`` with ``PM = -margin``, detached."""
    pm = -margin(logits_adv.detach(), y)
    return WEIGHT_SCALE * torch.sigmoid(slope * (pm + bias))


def _weights(batch: LossInputs, cfg: TrainConfig) -> Tensor:
    if batch.epoch < cfg.burn_in:
        return torch.ones(batch.y.shape, device=batch.y.device)
    return mail_weights(batch.logits_adv, batch.y, bias=cfg.mail_bias, slope=cfg.mail_slope)


def mail_at_objective(logits_adv: Tensor, y: Tensor, weights: Tensor) -> Objective:
    ce = F.cross_entropy(upcast(logits_adv), y, reduction="none")
    return Objective((weights * ce).mean(), weights)


def mail_trades_objective(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, weights: Tensor, *, beta: float) -> Objective:
    natural = F.cross_entropy(upcast(logits_nat), y)
    kl = F.kl_div(F.log_softmax(upcast(logits_adv), dim=1), F.log_softmax(upcast(logits_nat), dim=1),
                  reduction="none", log_target=True).sum(dim=1)
    return Objective(natural + beta * (weights * kl).mean(), weights)


def _at_loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    return mail_at_objective(batch.logits_adv, batch.y, _weights(batch, cfg))


def _trades_loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    assert batch.logits_nat is not None
    return mail_trades_objective(batch.logits_nat, batch.logits_adv, batch.y, _weights(batch, cfg), beta=cfg.beta)


register_defense(DefenseSpec(
    Defense.MAIL_AT.value, "Wang et al. MAIL on PGD-AT: CE at x' weighted by 3 * sigmoid(slope * (-margin + bias))",
    InnerLoss.CE, natural_forward=False, loss=_at_loss, burn_in_base="PGD-AT",
))
register_defense(DefenseSpec(
    Defense.MAIL_TRADES.value, "Wang et al. MAIL on TRADES: the KL term weighted by 3 * sigmoid(slope * (-margin + bias))",
    InnerLoss.KL, natural_forward=True, loss=_trades_loss, burn_in_base="TRADES",
))
