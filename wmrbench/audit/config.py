"""The settings of ``wmrbench audit``: which attacks run, at which budgets, and the
tolerances its checks use. Every value is recorded in audit.json."""

from __future__ import annotations

from dataclasses import dataclass

from wmrbench.attacks.lsa import TEMPERATURES
from wmrbench.attacks.square import QUERIES
from wmrbench.core.checks import check_int, check_range
from wmrbench.core.config import EvalConfig
from wmrbench.core.errors import WmrbenchError

DEFAULT_N_EXAMPLES = 500
AUDIT_ALPHAS = (1.0, 2.0)  # check 6: A_sa and A_tr at these alpha_test


@dataclass(frozen=True)
class Tolerances:
    """How far a number may move the wrong way before a check says warn or fail (in points of
    accuracy, 0-100). Accuracies (A_rob) are compared paired, on the same examples, with
    McNemar's exact test as well: a ``fail`` needs the difference beyond ``fail_points`` AND
    p < ``p_value``; beyond ``warn_points`` alone is a ``warn``. A_sa and A_tr rest on fewer
    effective examples (n_eff), so their thresholds are ``weighted_factor`` times wider and they
    can only warn."""

    warn_points: float = 0.5  # ~2-3 examples of 500: noise of a single-start attack
    fail_points: float = 1.0
    p_value: float = 0.05
    weighted_factor: float = 3.0
    eps_zero: float = 2.0  # "about 0": A_rob at the largest eps at most this (fail above 10)
    eps_half: float = 10.0  # and at eps 0.5 at most this (at eps 0.5 every MNIST image can become gray 0.5)
    # Fewer images than this and one image moves A_rob by more than 5 points, beyond every
    # tolerance above: no check can pass or fail, each says "too few" (at most a warn).
    min_examples: int = 20


@dataclass(frozen=True)
class AuditConfig:
    """``base`` is ``evaluate``'s config (data, attack preset, examples, seed, device, precision,
    results folder and run) with alpha_test = :data:`AUDIT_ALPHAS`; the rest are the audit's own."""

    base: EvalConfig
    eps_grid: tuple[float, ...] = (0.5, 1.0)
    steps_grid: tuple[int, ...] = (10, 40, 100)
    restarts_grid: tuple[int, ...] = (1, 5)
    temperatures: tuple[float, ...] = TEMPERATURES
    square_queries: int = QUERIES
    reference: str | None = None  # how the reference model was named (its options), for the record
    tolerances: Tolerances = Tolerances()

    def __post_init__(self) -> None:
        if not self.eps_grid or not self.steps_grid or not self.restarts_grid:
            raise WmrbenchError("the audit needs at least one eps, one step count and one restart count")
        object.__setattr__(self, "eps_grid", tuple(check_range(e, "eps", 0.0, 1.0, open_low=True) for e in self.eps_grid))
        object.__setattr__(self, "steps_grid", tuple(sorted({check_int(s, "steps", 1) for s in self.steps_grid})))
        object.__setattr__(self, "restarts_grid", tuple(sorted({check_int(r, "restarts", 1) for r in self.restarts_grid})))
        check_int(self.square_queries, "square_queries", 1)


def quick(cfg: AuditConfig) -> AuditConfig:
    """``--quick``: the same checks on smaller budgets (tests, a first look): steps 10/20/40,
    restarts 1/2, Square with 300 queries."""
    from dataclasses import replace

    return replace(cfg, steps_grid=(10, 20, 40), restarts_grid=(1, 2), square_queries=300)
