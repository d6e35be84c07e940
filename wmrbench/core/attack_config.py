"""What one attack is: its settings (:class:`AttackConfig`) and their names (str Enums).

The attack engine's own configuration, below both the engine (:mod:`wmrbench.attacks`) and the
training and evaluation configs (:mod:`wmrbench.core.config`), which hold an AttackConfig: the engine
imports nothing of theirs (an import-linter contract). It lives beside the package rather than in
it because importing any ``wmrbench.attacks.*`` module runs the package's ``__init__``, which
loads the whole engine: a config, a record or a report that only names an attack's settings
would load every attack with it (``import wmrbench.core.config`` took 4.1 s instead of 0.09 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from wmrbench.core.checks import check_eps, check_int, check_range, parse_enum, set_checked
from wmrbench.core.errors import WmrbenchError, setting


class InnerLoss(str, Enum):
    CE = "ce"  # cross-entropy at the adversarial point (PGD-AT and every evaluation attack)
    KL = "kl"  # KL(p(x) || p(x')) summed over classes (the TRADES training attack)


class Start(str, Enum):
    NORMAL = "normal"  # x + 0.001 * N(0, I): TRADES and Algorithm 1 of the paper
    UNIFORM = "uniform"  # x + U(-eps, eps): Madry et al. PGD
    ZERO = "zero"  # x itself


class Norm(str, Enum):
    LINF = "linf"  # L-infinity ball: signed steps
    L2 = "l2"  # L2 ball: steps along the normalized gradient


class RestartFrom(str, Enum):
    START = "start"  # each restart starts afresh from x (wmrbench's default)
    PREVIOUS = "previous"  # chained: the previous restart's end point plus fresh noise (the authors' evaluation)


class RestartRule(str, Enum):
    """How an attack chooses, per example, among the end points of its restarts."""

    # A misclassified candidate with the lowest margin, else the highest margin: the attacker's
    # best for A_rob, A_sa and A_tr at every alpha at once (wmrbench's default).
    WEIGHTED = "weighted"
    # The highest cross-entropy at the end point, ties to the later restart: the authors'
    # evaluation loop (their PGD_on_the_fly_attack_correct.py); the paper protocol's.
    MAX_CE = "max-ce"


class AttackMethod(str, Enum):
    """The uniform attack behind A_rob and A_sa (``method``); A_tr runs its weighted form."""

    PGD = "pgd"  # the paper's
    APGD_CE = "apgd-ce"  # Croce and Hein 2020, weighted by wmrbench for A_tr
    APGD_DLR = "apgd-dlr"
    AUTOATTACK = "autoattack"  # pyautoattack's ensemble (unweighted); A_tr then runs weighted APGD-CE
    PGD_LSA = "pgd-lsa"  # logit-scaling PGD, CE(logits / T) for several T (Hitaj et al. 2021); weighted for A_tr
    PGD_CW = "pgd-cw"  # PGD on the CW logit margin; weighted for A_tr


class AAVersion(str, Enum):
    STANDARD = "standard"
    PLUS = "plus"
    RAND = "rand"


class Precision(str, Enum):
    BF16 = "bf16"  # bf16 autocast (CUDA default)
    FP32 = "fp32"  # full precision (CPU default)


# Up to this alpha, |alpha * margin| <= 40 and the weight exp(-alpha * margin) is a normal float32
# (margins lie in [-1, 1]). Weighted PGD steps stay exact beyond it (attacks.objective.step_weights);
# weighted APGD compares the objectives s_i * l_i themselves across iterations, so it stops here.
STABLE_ALPHA = 40.0


def check_apgd_alpha(alpha: float, attack: str = "apgd") -> None:
    """One line for a weighted APGD alpha above :data:`STABLE_ALPHA` (the config checks it before
    any work; :func:`wmrbench.attacks.apgd` checks it again for library callers)."""
    if alpha > STABLE_ALPHA:
        raise WmrbenchError(
            f"{setting('alpha_test', f'{alpha:g}')} with {setting('method', attack)}: weighted APGD compares "
            f"exp(-alpha * margin) * loss across its iterations, which overflows float32 above alpha {STABLE_ALPHA:g}; "
            f"use {setting('method', 'pgd')} (exact at any alpha) or alpha_test <= {STABLE_ALPHA:g}"
        )


@dataclass(frozen=True)
class AttackConfig:
    """One (weighted) PGD attack in the ``norm`` ball of radius eps, intersected with [0, 1]."""

    eps: float
    step_size: float
    steps: int
    restarts: int = 1
    start: Start = Start.UNIFORM
    norm: Norm = Norm.LINF
    restart_from: RestartFrom = RestartFrom.START
    # how each example's point is chosen among the restarts (configs written before it: weighted)
    restart_rule: RestartRule = RestartRule.WEIGHTED

    def __post_init__(self) -> None:
        # A plain string ("zero") becomes its Enum member, or one line listing the choices.
        object.__setattr__(self, "start", parse_enum(Start, self.start, "start"))
        object.__setattr__(self, "restart_rule", parse_enum(RestartRule, self.restart_rule, "restart-rule"))
        object.__setattr__(self, "norm", parse_enum(Norm, self.norm, "norm"))
        object.__setattr__(self, "restart_from", parse_enum(RestartFrom, self.restart_from, "restart-from"))
        if self.norm is Norm.LINF:
            eps = check_eps(self.eps)
        else:
            eps = check_range(self.eps, "eps", 0.0)  # an L2 radius can exceed 1
        set_checked(self, eps=eps, step_size=check_range(self.step_size, "step_size", 0.0),
             steps=check_int(self.steps, "steps", 0), restarts=check_int(self.restarts, "restarts", 1))
