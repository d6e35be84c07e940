"""The library's defaults where no data set is named: one rule, defined here once.

Where a data set is named (``wmrbench train --dataset mnist``, ``evaluate(..., dataset="mnist")``)
its preset decides every setting (:mod:`wmrbench.core.presets`). Where none is named (``WeightedPGD``,
``WeightedAPGD``, ``wmrbench.losses.*``, ``wmrbench.fit`` and ``wmrbench.evaluate`` without
``dataset``), the rule is: **the paper's CIFAR-10 TRADES setting** (Zeng et al., AAAI 2021,
section 5; the authors' code). Why CIFAR-10: it is the paper's main benchmark and the L-infinity
threat model RobustBench ranks by default, so a model handed over without a name is most likely
evaluated and trained there; TRADES because its CIFAR-10 budget is the paper's evaluation
radius (0.031), which PGD-AT's training code rounds to 8/255. ``tests/core/test_defaults.py`` holds
these values equal to :data:`wmrbench.core.presets.PRESETS` and every entry point's signature to them.

``alpha_train`` is 0 on every data set: omitted means the unweighted baseline and "+ours" is
asked for (the preset's ``alpha_train`` is the value the paper's "+ours" rows use, which
``reproduce`` and ``demo`` ask for). A given ``eps`` or ``steps`` without a ``step_size`` keeps
the default walk's reach (``steps * step_size / eps``): :func:`scaled_step_size`.

This module sits below the attack engine (it imports nothing of wmrbench), so the engine's
Python classes can read it; :mod:`wmrbench.core.presets` sits above the engine and cannot be read there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """An L-infinity attack budget: ``steps`` steps of ``step_size`` in the ball of radius ``eps``."""

    eps: float
    step_size: float
    steps: int


@dataclass(frozen=True)
class LibraryDefaults:
    alpha_train: float  # 0: the unweighted defense; "+ours" is alpha_train > 0, asked for
    beta: float  # TRADES' 1/lambda (the CE + beta * KL objective), also MART's and MAIL-TRADES' beta
    train_attack: Budget  # the training attack (fit, losses.*)
    eval_attack: Budget  # the evaluation attack (evaluate, WeightedPGD)
    apgd_steps: int  # APGD's iteration budget (WeightedAPGD): AutoAttack's, not the paper's


# The paper's CIFAR-10 TRADES setting: eps 0.031, training attack 10 steps of 0.007, beta
# (1/lambda) 5, evaluation PGD-20 of step 0.003 (paper section 5); APGD's 100 iterations are
# AutoAttack's standard version (Croce and Hein 2020).
DEFAULTS = LibraryDefaults(
    alpha_train=0.0,
    beta=5.0,
    train_attack=Budget(eps=0.031, step_size=0.007, steps=10),
    eval_attack=Budget(eps=0.031, step_size=0.003, steps=20),
    apgd_steps=100,
)


def scaled_step_size(eps: float, steps: int, budget: Budget) -> float:
    """The step size for ``eps`` and ``steps`` when none is given: the one whose walk reaches as far
    relative to eps as ``budget``'s (``steps * step_size / eps`` kept), so that a larger ball gets
    longer steps and fewer steps get longer ones. ``budget``'s own eps and steps give its own
    step size exactly."""
    if not (isinstance(eps, (int, float)) and math.isfinite(eps)) or isinstance(steps, bool) or not isinstance(steps, int):
        return budget.step_size  # a bad eps or steps is refused by AttackConfig's own check, with its line
    if steps <= 0:
        return budget.step_size * eps / budget.eps  # no step is taken; any value checks
    return budget.step_size * (eps / budget.eps) * (budget.steps / steps)
