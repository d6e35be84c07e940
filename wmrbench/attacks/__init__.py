"""THE attack engine: the only code that takes gradients with respect to inputs.

``train``, ``attack`` and ``evaluate`` all call it (docs/definitions.md, sections 2-3; docs/layout.md):

* :mod:`.objective`: margin, importance weights, the per-example inner loss, the choice among
  restarts (a misclassified candidate with the lowest margin, else the highest margin: best for
  every alpha at once; or the authors' highest cross-entropy, ``restart_rule="max-ce"``;
  ``AttackResult.restart`` records the winner), and the model-side helpers
  (eval mode with frozen parameters, autocast, predict);
* :mod:`.noise`: the starts in the L-infinity or L2 ball, keyed on (seed, example index,
  restart) or drawn from a generator, from x or (chained restarts) the previous end point;
* :mod:`.norms`: the L2 geometry (per-example norm, normalized gradient, projection);
* :mod:`.pgd`: (weighted) PGD in the L-infinity or L2 ball, with fresh or chained restarts;
* :mod:`.apgd`: (weighted) APGD (Croce and Hein 2020) on CE or DLR, pyautoattack's schedule;
* :mod:`.autoattack`: AutoAttack (unweighted) through the ``pyautoattack`` package;
* :mod:`.lsa`, :mod:`.cw`: (weighted) logit-scaling PGD and margin (CW) PGD, through PGD's step tail;
* :mod:`.square`: the black-box Square attack (unweighted) through ``pyautoattack``;
* :mod:`.stepper`: the fast path (eager loop, CUDA-graph replay, torch.compile);
* :mod:`.wrappers`: :class:`WeightedPGD` and :class:`WeightedAPGD`, the attacks as torchattacks-like
  objects (``atk(x, y) -> x_adv``) over this engine, for a user's own code;
* :mod:`.registry`: attacks by name (``get_attack("pgd")``, ``"apgd-ce"``, ``"apgd-dlr"``,
  ``"autoattack"``, ``"pgd-lsa"``, ``"pgd-cw"``, ``"square"``).

Importing this package registers every attack.
"""

from wmrbench.attacks.noise import keyed_normal, keyed_uniform, start_point
from wmrbench.attacks.objective import (
    AttackResult, attack_mode, autocast, choose_among, choose_max_ce, dlr_loss, importance_weights, inner_loss, margin,
    predict, upcast,
)
from wmrbench.attacks.pgd import pgd
from wmrbench.attacks.apgd import ApgdLoss, apgd
from wmrbench.attacks.autoattack import autoattack
from wmrbench.attacks.cw import cw_loss, logit_margin, pgd_cw
from wmrbench.attacks.lsa import pgd_lsa
from wmrbench.attacks.square import square
from wmrbench.attacks.registry import AttackSpec, get_attack, list_attacks, register_attack
from wmrbench.attacks.wrappers import WeightedAPGD, WeightedAttackResult, WeightedPGD

__all__ = [
    "ApgdLoss", "AttackResult", "AttackSpec", "apgd", "attack_mode", "autoattack", "autocast", "choose_among",
    "choose_max_ce", "cw_loss", "dlr_loss", "get_attack", "importance_weights", "inner_loss", "keyed_normal", "keyed_uniform",
    "list_attacks", "logit_margin", "margin", "pgd", "pgd_cw", "pgd_lsa", "predict", "register_attack", "square",
    "start_point", "upcast", "WeightedAPGD", "WeightedAttackResult", "WeightedPGD",
]
