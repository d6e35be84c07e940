"""How a result was measured, in words: the protocol columns and one-line title every table,
the leaderboard, the HTML report and ``evaluate``'s own output share.

It sits below both the reports and the evaluation (it imports only the configuration), so that
neither has to import the other for a line of text.
"""

from __future__ import annotations

from typing import Any

from wmrbench.core.attack_config import AttackMethod, Norm, RestartFrom
from wmrbench.core.config import EvalConfig

# Attacks that take --step-size (APGD sets its own, AutoAttack its attacks'): only their rows show it.
USES_STEP_SIZE = frozenset({AttackMethod.PGD, AttackMethod.PGD_LSA, AttackMethod.PGD_CW})


def eps_text(eps: float) -> str:
    """8/255 where eps is a whole number of 255ths (RobustBench's way), else the number (0.031)."""
    k = round(eps * 255)
    return f"{k}/255" if k > 0 and abs(eps * 255 - k) < 1e-6 else f"{eps:g}"


def protocol_columns(cfg: EvalConfig, n_examples: int) -> dict[str, Any]:
    attack = cfg.attack
    chained = " (chained)" if attack.restart_from is RestartFrom.PREVIOUS and attack.restarts > 1 else ""
    return {
        "Attack": _attack_name(cfg) + chained, "Norm": "L2" if attack.norm is Norm.L2 else "Linf", "eps": eps_text(attack.eps),
        # APGD sets its own step size (2*eps, halved on schedule) and AutoAttack its attacks':
        # the PGD step size they ignore is not shown as if it had been used.
        "Steps": attack.steps, "Step size": attack.step_size if cfg.method in USES_STEP_SIZE else None,
        "Restarts": attack.restarts,
        # How one point per example is chosen among the restarts (results before the field: weighted).
        "Restart rule": attack.restart_rule.value, "Examples": n_examples,
        "Precision": cfg.precision.value,
    }


def _attack_name(cfg: EvalConfig) -> str:
    if cfg.method is AttackMethod.AUTOATTACK:
        return f"AutoAttack ({cfg.aa_version.value})"
    return cfg.method.value.upper()  # PGD, APGD-CE, APGD-DLR


def protocol_text(cfg: EvalConfig) -> str:
    """One line for a title: 'PGD-40, Linf eps 0.3, step 0.01, 10 restarts, fp32'."""
    p = protocol_columns(cfg, 0)
    if cfg.method is AttackMethod.AUTOATTACK:
        return f"{p['Attack']}, {p['Norm']} eps {p['eps']}, {p['Precision']} (A_tr: weighted APGD-CE-{p['Steps']})"
    restarts = f"{p['Restarts']} restart{'s' if p['Restarts'] != 1 else ''}"
    if p["Restarts"] > 1:  # with one restart there is nothing to choose
        restarts += f" ({p['Restart rule']} rule)"
    step = "" if cfg.method not in USES_STEP_SIZE else f", step {p['Step size']:g}"
    return f"{p['Attack']}-{p['Steps']}, {p['Norm']} eps {p['eps']}{step}, {restarts}, {p['Precision']}"
