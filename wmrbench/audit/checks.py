"""The gradient-masking checklist (Carlini et al. 2019, "On Evaluating Adversarial Robustness",
section 7; Athalye et al. 2018, section 3.1) as pure functions of the stages' records.

Checks 1-5 judge A_rob, paired on the same examples: ``d`` is how many points of accuracy the
attack that should not be stronger takes off, McNemar's exact test says whether the discordant
examples could be a coin's. Check 6 judges A_sa and A_tr at the audit alphas on the same
comparisons (thresholds ``weighted_factor`` wider; it can only warn) and reports A_wc, the worst case over every
point the audit found inside the threat model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wmrbench.audit.config import Tolerances
from wmrbench.core.config import metric_label
from wmrbench.core.errors import setting
from wmrbench.results.metrics import accuracy, compute_metrics, weighted_accuracy
from wmrbench.results.records import attack_column_pairs

PASS, WARN, FAIL, NOT_RUN = "pass", "warn", "fail", "not run"
_ORDER = {NOT_RUN: -1, PASS: 0, WARN: 1, FAIL: 2}


def worst(statuses: Sequence[str]) -> str:
    ran = [s for s in statuses if s != NOT_RUN]
    return max(ran, key=_ORDER.__getitem__) if ran else NOT_RUN


@dataclass(frozen=True)
class Check:
    number: int
    name: str
    status: str
    detail: str  # the numbers behind it, one line
    suggests: str  # what a fail (or warn) suggests
    numbers: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        tail = f" -> {self.suggests}" if self.status in (WARN, FAIL) else ""
        return f"{self.number}. {self.status:4}  {self.name}: {self.detail}{tail}"


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class Paired:
    """``weaker`` vs ``stronger`` (the attack that should be at least as strong as the other) on
    A_rob: ``d`` = A_rob(weaker) - A_rob(stronger) in points; b/c the discordant examples."""

    weaker: str
    stronger: str
    d: float
    b: int  # correct under ``weaker``'s points, wrong under ``stronger``'s
    c: int
    p: float

    def status(self, tol: Tolerances) -> str:
        if self.d > tol.fail_points and self.p < tol.p_value:
            return FAIL
        return WARN if self.d > tol.warn_points else PASS

    def text(self) -> str:
        return f"{self.weaker} {self.d:+.1f} vs {self.stronger} (p {self.p:.2g})"

    @property
    def one_image(self) -> bool:
        """The difference is one example answered differently: no evidence of anything."""
        return self.b + self.c == 1


def one_image() -> str:
    return f"the difference rests on one image answered differently: too few to tell; audit more images ({setting('n_examples')})"


def _suggests(pairs: Sequence[Paired], statuses: Sequence[str], suggests: str) -> str:
    """``suggests`` (a diagnosis), unless every warning or failure rests on one image."""
    flagged = [p for p, s in zip(pairs, statuses) if s in (WARN, FAIL)]
    return one_image() if flagged and all(p.one_image for p in flagged) else suggests


def paired(frames: dict[str, pd.DataFrame], weaker: str, stronger: str) -> Paired:
    a = frames[weaker]["pgd_correct"].to_numpy(dtype=bool)
    b = frames[stronger]["pgd_correct"].to_numpy(dtype=bool)
    n_b, n_c = int((a & ~b).sum()), int((~a & b).sum())
    return Paired(weaker, stronger, accuracy(a) - accuracy(b), n_b, n_c, mcnemar_p(n_b, n_c))


def weighted_metrics(frame: pd.DataFrame, alphas: Sequence[float]) -> dict[str, float]:
    """A_sa (and A_tr where the stage ran its weighted form) at each alpha, keyed ``A_sa@1``."""
    m = compute_metrics(frame, list(alphas))
    out = {metric_label("A_sa", a): v for a, v in m.A_sa.items()}
    out.update({metric_label("A_tr", a): v for a, v in m.A_tr.items()})
    return out


def _metrics(frame: pd.DataFrame, alphas: Sequence[float]) -> dict[str, float]:
    return {"A_rob": accuracy(frame["pgd_correct"].to_numpy()), **weighted_metrics(frame, alphas)}


# ---------------------------------------------------------------------------------------------


def eps_sweep(frames: dict[str, pd.DataFrame], by_eps: dict[float, str], alphas: Sequence[float], tol: Tolerances) -> Check:
    table = {f"{eps:g}": _metrics(frames[name], alphas) for eps, name in sorted(by_eps.items())}
    epss = sorted(by_eps)
    rob = [table[f"{e:g}"]["A_rob"] for e in epss]
    largest = rob[-1]
    half = table.get("0.5", {}).get("A_rob")
    rising = any(later > earlier + tol.warn_points for earlier, later in zip(rob, rob[1:]))
    if largest > 5 * tol.eps_zero or (half is not None and half > 2 * tol.eps_half):
        status = FAIL
    elif largest > tol.eps_zero or (half is not None and half > tol.eps_half) or rising:
        status = WARN
    else:
        status = PASS
    detail = "A_rob " + ", ".join(f"{r:.1f} at eps {e:g}" for e, r in zip(epss, rob))
    detail += f" (pass: <= {tol.eps_zero:g} at eps {epss[-1]:g}" + (f", <= {tol.eps_half:g} at 0.5)" if half is not None else ")")
    return Check(1, "eps sweep to ~0", status, detail,
                 "an unbounded attack should always win: gradients that do not lead anywhere (masking) or a broken attack",
                 {"table": table})


def budget(frames: dict[str, pd.DataFrame], grid: dict[tuple[int, int], str], tol: Tolerances) -> tuple[Check, list[Paired]]:
    pairs = []
    for (steps, restarts), name in grid.items():
        for (steps2, restarts2), name2 in grid.items():
            more_steps = restarts2 == restarts and steps2 > steps and not any(
                r == restarts and steps < s < steps2 for s, r in grid)
            more_restarts = steps2 == steps and restarts2 > restarts and not any(
                s == steps and restarts < r < restarts2 for s, r in grid)
            if more_steps or more_restarts:
                pairs.append(paired(frames, name2, name))  # the bigger budget must not be weaker
    statuses = [p.status(tol) for p in pairs]
    status = worst(statuses) if pairs else NOT_RUN
    table = {name: accuracy(frames[name]["pgd_correct"].to_numpy()) for name in grid.values()}
    worst_pair = max(pairs, key=lambda p: p.d) if pairs else None
    detail = "A_rob " + ", ".join(f"{n} {v:.1f}" for n, v in table.items())
    if worst_pair is not None:
        detail += f"; largest rise {worst_pair.text()} (tolerance {tol.warn_points:g}/{tol.fail_points:g} points)"
    return Check(2, "more steps and restarts never raise A_rob", status, detail,
                 _suggests(pairs, statuses, "a longer or restarted attack did worse: noisy or shattered gradients "
                           "(randomness, non-differentiable layers): use EOT / BPDA and report the strongest budget"),
                 {"A_rob": table, "pairs": [p.__dict__ for p in pairs]}), pairs


def versus(number: int, name: str, frames: dict[str, pd.DataFrame], weaker: Sequence[str], stronger: str,
           tol: Tolerances, suggests: str, cap: str | None = None) -> tuple[Check, list[Paired]]:
    """Each of ``weaker`` must not be beaten by ``stronger`` beyond the tolerance. ``cap``: the
    most this comparison may say (``warn`` for single attacks against Square, see check 3)."""
    pairs = [paired(frames, w, stronger) for w in weaker]
    statuses = [p.status(tol) for p in pairs]
    if cap is not None:
        statuses = [cap if _ORDER[s] > _ORDER[cap] else s for s in statuses]
    detail = "; ".join(p.text() for p in pairs)
    return Check(number, name, worst(statuses), detail, _suggests(pairs, statuses, suggests),
                 {"pairs": [p.__dict__ for p in pairs]}), pairs


def too_few(checks: Sequence[Check], n: int, tol: Tolerances) -> list[Check]:
    """On fewer than ``tol.min_examples`` images no check can say pass or fail: one image is more
    than every tolerance. Each check that ran says so, as a warning."""
    if n >= tol.min_examples:
        return list(checks)
    said = f"rests on {n} image{'' if n == 1 else 's'}: too few for a verdict; audit at least {tol.min_examples} ({setting('n_examples')})"
    return [dataclasses.replace(ch, status=WARN, suggests=said) if ch.status != NOT_RUN else ch for ch in checks]


def weighted_check(frames: dict[str, pd.DataFrame], pairs: Sequence[Paired], alphas: Sequence[float],
                   inside: Sequence[str], tol: Tolerances) -> Check:
    """Check 6: the comparisons of checks 2-5 on A_sa and A_tr, and A_wc over ``inside``."""
    warn_at = tol.warn_points * tol.weighted_factor
    rises = []
    for p in pairs:
        w, s = weighted_metrics(frames[p.weaker], alphas), weighted_metrics(frames[p.stronger], alphas)
        rises += [(w[k] - s[k], f"{k} {p.weaker} {w[k] - s[k]:+.1f} vs {p.stronger}") for k in w if k in s]
    top = max(rises, default=(0.0, ""))
    # At most a warning: A_sa and A_tr rest on few effective examples, and an attack that picks
    # among several candidates per example (pgd-lsa's temperatures, restarts) lowers them by the
    # restart rule alone; a rise says "report A_wc", not "masked".
    status = WARN if top[0] > warn_at else PASS
    wc = a_wc(frames, inside, alphas)
    detail = "A_wc " + ", ".join(f"{k} {v:.1f}" for k, v in wc.items())
    if top[1]:
        detail += f"; largest rise {top[1]} (warn beyond {warn_at:g} points)"
    return Check(6, "A_sa and A_tr at alpha " + ", ".join(f"{a:g}" for a in alphas) + "; A_wc", status, detail,
                 "the non-uniform metrics move the wrong way under a stronger attack: report A_wc, not PGD's A_sa/A_tr",
                 {"A_wc": wc, "rises": {text: value for value, text in rises}})


def a_wc(frames: dict[str, pd.DataFrame], names: Sequence[str], alphas: Sequence[float]) -> dict[str, float]:
    """Per example the attacker's best point over the clean point and every attack's points
    (unweighted and weighted) in ``names``, by :func:`wmrbench.metrics.worst_case_points`' rule
    (a misclassified point with the lowest margin, else the highest margin); then A_rob and
    the weighted accuracy at each alpha of those points."""
    first = frames[names[0]]
    candidates = [("clean_correct", "clean_margin", first)]
    for name in names:
        frame = frames[name]
        candidates += [(c, m, frame) for c, m in attack_column_pairs(frame)]
    correct = np.stack([f[c].to_numpy(dtype=bool) for c, _, f in candidates])
    margin = np.stack([f[m].to_numpy(dtype=np.float64) for _, m, f in candidates])
    key = np.where(correct, -margin, margin - 10.0)  # margins lie in [-1, 1]: errors first, lowest margin
    best = key.argmin(axis=0)
    cols = np.arange(correct.shape[1])
    correct, margin = correct[best, cols], margin[best, cols]
    out = {"A_rob": accuracy(correct)}
    out.update({metric_label("A_wc", a): weighted_accuracy(correct, margin, a) for a in alphas})
    return out


__all__ = ["Check", "FAIL", "NOT_RUN", "PASS", "Paired", "WARN", "a_wc", "budget", "eps_sweep",
           "mcnemar_p", "paired", "too_few", "versus", "weighted_check", "worst"]
