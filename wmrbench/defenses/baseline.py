"""PGD-AT and TRADES, each unweighted (alpha_train 0) or with the paper's exp(-alpha * margin)
weight ("+ours"): the formulas are :mod:`wmrbench.defenses.objectives`' (docs/definitions.md, section 5)."""

from __future__ import annotations

from wmrbench.core.attack_config import InnerLoss
from wmrbench.core.config import Defense, TrainConfig
from wmrbench.defenses.base import DefenseSpec, LossInputs
from wmrbench.defenses.registry import register_defense
from wmrbench.defenses.objectives import Objective, pgd_at_objective, trades_objective


def _weighting(cfg: TrainConfig) -> dict[str, object]:
    return dict(alpha=cfg.alpha_train, detach_weights=cfg.detach_weights, normalize_weights=cfg.normalize_weights)


def _pgd_loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    return pgd_at_objective(batch.logits_adv, batch.y, **_weighting(cfg))  # type: ignore[arg-type]


def _trades_loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    assert batch.logits_nat is not None
    return trades_objective(batch.logits_nat, batch.logits_adv, batch.y, beta=cfg.beta, **_weighting(cfg))  # type: ignore[arg-type]


register_defense(DefenseSpec(
    Defense.PGD.value, "Madry et al. PGD-AT: CE at x' (x exp(-alpha * margin) when alpha_train > 0)",
    InnerLoss.CE, natural_forward=False, loss=_pgd_loss, alpha_weighted=True,
))
register_defense(DefenseSpec(
    Defense.TRADES.value,
    "Zhang et al. TRADES: CE at x + beta * KL(p(x) || p(x')) (the KL x exp(-alpha * margin) when alpha_train > 0)",
    InnerLoss.KL, natural_forward=True, loss=_trades_loss, alpha_weighted=True,
))
