"""The Square attack (Andriushchenko et al., ECCV 2020): a black-box, score-based attack, through
``pyautoattack``'s ``SquareAttack``, as a wmrbench attack.

It never reads a gradient, only the model's logits at the points it queries, so a defense that
hides its gradient does not hide its decision boundary from it; ``wmrbench audit`` compares every
white-box attack against it. pyautoattack's settings are AutoAttack's (``p_init=0.8``, margin loss,
one restart); only the number of queries is wmrbench's to choose (AutoAttack: 5000).

Unweighted (it stops at the first misclassified point and returns x itself for an example it
cannot break, as pyautoattack does); the model runs in eval mode with frozen parameters, the
global RNG is restored afterwards (pyautoattack reseeds it with ``seed``), so a call depends only
on (seed, the batch).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmrbench.attacks.autoattack import _Logits, _quiet, _refuse_weights
from wmrbench.attacks.objective import Alpha, AttackResult, attack_mode, margin, predict
from wmrbench.attacks.registry import register_attack
from wmrbench.core.attack_config import AttackConfig, Norm, Precision
from wmrbench.core.checks import parse_enum
from wmrbench.core.errors import WmrbenchError

QUERIES = 1000  # wmrbench audit's default (AutoAttack runs 5000)


@register_attack("square", "Square (black-box, score-based) through pyautoattack; unweighted")
def square(
    model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, *, alpha: Alpha = None, queries: int = QUERIES,
    seed: int = 0, precision: Precision | str = Precision.FP32, index: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AttackResult:
    """Square at ``attack.eps`` in ``attack.norm`` with ``queries`` queries per example; only eps
    and norm are read from ``attack``. ``alpha`` must be None or 0; ``index`` and ``generator``
    are accepted for a uniform call and unused."""
    _refuse_weights(alpha)
    if queries < 1:
        raise WmrbenchError(f"square needs at least 1 query; got {queries}")
    from pyautoattack.square import SquareAttack

    precision = parse_enum(Precision, precision, "precision")
    x = x.detach()
    norm = "Linf" if attack.norm is Norm.LINF else "L2"
    with attack_mode(model), _quiet(False, x.device):
        runner = SquareAttack(_Logits(model, precision), norm=norm, n_queries=queries, eps=attack.eps,
                              p_init=0.8, n_restarts=1, seed=seed, device=x.device)
        with torch.no_grad():
            x_adv = runner.perturb(x, y)
    logits = predict(model, x_adv, precision)
    return AttackResult(x_adv.detach(), logits, margin(logits, y))
