"""GAIRAT (Zhang, Zhu, Niu, Han, Sugiyama, Kankanhalli; ICLR 2021): geometry-aware
instance-reweighted adversarial training.

Followed: ``GAIR.py`` (the "Tanh" weight), ``GAIRAT.py`` (the training loop: burn-in, the
lambda schedule) and ``attack_generator.py`` (``pgd``: how kappa is counted) of
github.com/zjfheart/Geometry-aware-Instance-reweighted-Adversarial-Training, in our own words.

kappa_i is the number of the K attack steps that started from a point the model (eval mode)
still classified correctly, in 0..K: a point far from the boundary survives every step. With
``h = floor(K / 2)``:

    w_i      = (1 + tanh(lambda + 5 * (h - kappa_i) / h)) / 2      (= (1 + tanh(lambda + 5 (1 - 2 kappa_i / K))) / 2, K even)
    w~_i     = m * w_i / sum_j w_j                                  (normalized over the mini-batch)
    loss     = (1/m) sum_i w~_i * CE(f(x'_i), y_i)

so an example the attack broke at once (kappa 0) weighs most, one that survived every step
(kappa K) least. Burn-in: for the first ``burn_in`` epochs the loss is plain PGD-AT's
``(1/m) sum_i CE`` (the authors' ``begin_epoch`` 60 applies the weight from the 1-based epoch 60
on, i.e. after 59 epochs; their default "fixed" lambda schedule is +infinity, i.e. uniform
weights, before that and ``lambda`` after, which is the same thing).

Differences from the authors' code (docs/definitions.md, "GAIRAT"): the training attack runs
from wmrbench's training start (0.001 * N(0, I), Algorithm 1) rather than their U(-eps, eps),
so that every defense of ``reproduce family`` sees the same attack; ``--start uniform`` gives
theirs. Their "linear" and "piecewise" lambda schedules (not the default) are not offered. Under
torchrun the weights are normalized over each process's share of the batch (as the authors'
DataParallel code normalizes over the whole batch, the result differs slightly by world size).
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


def gair_weights(kappa: Tensor, steps: int, lam: float) -> Tensor:
    """The normalized weights w~ (mean 1 over the batch) from kappa in 0..steps (``steps`` >= 2)."""
    half = steps // 2
    raw = (1.0 + torch.tanh(lam + 5.0 * (half - kappa.float()) / half)) / 2.0
    return raw * (raw.numel() / raw.sum())


def gairat_objective(logits_adv: Tensor, y: Tensor, kappa: Tensor | None, *, steps: int, lam: float,
                     reweight: bool) -> Objective:
    """GAIRAT's loss; ``reweight=False`` (burn-in) is plain PGD-AT with unit weights."""
    ce = F.cross_entropy(upcast(logits_adv), y, reduction="none")
    if not reweight:
        return Objective(ce.mean(), torch.ones_like(ce))
    assert kappa is not None
    weights = gair_weights(kappa, steps, lam).to(ce.dtype)
    return Objective((weights * ce).mean(), weights)


def _loss(batch: LossInputs, cfg: TrainConfig) -> Objective:
    return gairat_objective(batch.logits_adv, batch.y, batch.survived, steps=cfg.attack.steps, lam=cfg.gair_lambda,
                            reweight=batch.epoch >= cfg.burn_in)


register_defense(DefenseSpec(
    Defense.GAIRAT.value,
    "Zhang et al. GAIRAT: CE at x' weighted by (1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2, kappa = PGD steps survived",
    InnerLoss.CE, natural_forward=False, loss=_loss, counts_survived=True, min_steps=2, burn_in_base="PGD-AT",
))
