"""(Weighted) logit-scaling PGD (``pgd-lsa``): PGD on ``CE(logits / T)`` for a few temperatures T.

Definition followed: Hitaj, Pagnotta, Masi and Mancini (2021), "Evaluating the Robustness of
Geometry-Aware Instance-Reweighted Adversarial Training" (arXiv 2103.01914), whose attack
multiplies the logits by a factor before the cross-entropy (their ``attack_pgd.py``,
``logits = alpha * model(x)``; the attack goes back to Carlini and Wagner 2016, arXiv 1607.04311,
against defensive distillation). Their factor is ``1 / T`` here (``alpha`` is the importance
weight's exponent in wmrbench). Why: a model whose logits are scaled up (GAIRAT's per-example
loss scaling, or a defense that saturates its softmax) has a cross-entropy whose gradient
underflows to zero at confident points, so PGD-CE does not move; dividing by a large T brings the
softmax back into range. A small T (< 1) sharpens it, the other way round.

The weighted form ascends ``sum_i s_i * CE(z_i / T, y_i)`` with ``s_i = exp(-alpha * margin_i)``
computed from the model's own (unscaled) logits and kept in the graph, through the same step
tail as weighted PGD (:func:`.pgd.ascend`); at ``alpha = 0`` it is the unweighted form bit for
bit, and at ``T = 1`` it is :func:`.pgd.pgd` on CE.

Per example the attacker's best point over every (temperature, restart) is kept by the restart
rule (:func:`.objective.choose_among`); ``result.restart`` is ``t * restarts + r`` for the t-th
temperature's restart r. Every temperature uses the same keyed starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.attacks.objective import Alpha, AttackResult, choose_among, choose_max_ce, upcast
from wmrbench.attacks.pgd import ascend, run_steps
from wmrbench.attacks.registry import register_attack
from wmrbench.attacks.stepper import Forward, StepInputs
from wmrbench.core.attack_config import AttackConfig, Precision, RestartRule
from wmrbench.core.errors import WmrbenchError

# Log-spaced around 1: 0.1 sharpens, 10 softens, 1e4 undoes a softmax saturated by logits
# scaled up by ~1e4 (the masked fixture of tests/audit/test_audit.py); T = 1 is plain PGD-CE.
TEMPERATURES = (0.1, 10.0, 10000.0)


@dataclass(frozen=True)
class ScaledCEStep:
    """One PGD step on ``CE(logits / temperature)``; frozen, so equal temperatures share a CUDA graph."""

    temperature: float

    def __call__(self, forward: Forward, x_adv: Tensor, inputs: StepInputs) -> Tensor:
        x_adv = x_adv.detach().requires_grad_(True)
        logits = forward(x_adv)
        per_example = F.cross_entropy(upcast(logits) / self.temperature, inputs.y, reduction="none")
        return ascend(x_adv, logits, per_example, inputs)


def check_temperatures(temperatures: tuple[float, ...]) -> tuple[float, ...]:
    values = tuple(float(t) for t in temperatures)
    if not values or not all(t > 0 and t < float("inf") for t in values):
        raise WmrbenchError(f"pgd-lsa needs one or more finite temperatures > 0; got {temperatures!r}")
    return values


@register_attack("pgd-lsa", "(weighted) logit-scaling PGD: CE(logits / T) for several T (Hitaj et al. 2021)")
def pgd_lsa(
    model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, *, alpha: Alpha = None,
    temperatures: tuple[float, ...] = TEMPERATURES, generator: torch.Generator | None = None,
    index: Tensor | None = None, seed: int = 0, precision: Precision | str = Precision.FP32,
    cuda_graph: bool | None = None, compile_model: bool = False,
) -> AttackResult:
    """(Weighted) PGD on ``CE(logits / T)`` for each T in ``temperatures``, with ``attack``'s eps,
    step size, steps, restarts, start and norm; per example the best point over every temperature
    and restart (:func:`.objective.choose_among`). Options as :func:`.pgd.pgd`."""
    best: AttackResult | None = None
    for t, temperature in enumerate(check_temperatures(temperatures)):
        found = run_steps(ScaledCEStep(temperature), model, x, y, attack, alpha=alpha, generator=generator,
                          index=index, seed=seed, precision=precision, cuda_graph=cuda_graph,
                          compile_model=compile_model)
        found.restart = found.restart + t * attack.restarts
        if found.weighted_pick is not None:
            found.weighted_pick.restart = found.weighted_pick.restart + t * attack.restarts
        if best is None:
            best = found
        elif attack.restart_rule is RestartRule.MAX_CE:
            # Temperatures are chosen among like restarts: by the attack's restart rule, with the
            # weighted rule's pick carried beside (as pgd's restarts do).
            weighted = choose_among(best.weighted_pick, found.weighted_pick, y)
            best = choose_max_ce(best, found, y)
            best.weighted_pick = weighted
        else:
            best = choose_among(best, found, y)
    assert best is not None
    return best
