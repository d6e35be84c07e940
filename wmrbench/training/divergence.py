"""When a training run has diverged although its loss stayed finite: one rule, a pure function of
the per-epoch history.

The finiteness guard (:class:`Diverged`, raised by the epoch's step and by
:func:`check_finite_weights`) catches NaN and inf. A run can also explode and
stay finite: ``train --dataset digits --defense trades --alpha-train 2 --lr 10000 --epochs 3``
printed losses 2.1e32, 18805 and 16278 with training attack accuracy at chance (about 10%), and
was saved as if it had trained. The rule here stops such a run after the epoch where it shows.

The rule (``diverged``), checked once per epoch on the epoch's statistics, which training reads
back once per epoch anyway (no extra host sync), so it is deterministic: the same history gives
the same answer on every device and every rerun.

1. **Loss ceiling.** The epoch's mean training loss exceeds ``LOSS_FACTOR`` (10) times the
   largest loss an untrained model can start from, ``ln(C) * loss_scale``. ``ln(C)`` is the
   cross-entropy of a uniform prediction over C classes (2.30 for 10 classes), where every fresh
   model starts; ``loss_scale`` bounds how much the objective multiplies a per-example loss by:
   the importance weight ``s = exp(-alpha * margin)`` is at most ``exp(alpha_train)`` (margin
   >= -1), and TRADES adds ``beta`` times the weighted KL to the clean cross-entropy, so its scale
   is ``exp(alpha_train) * (1 + beta)``. A run whose mean loss is ten times that is not learning.
   (TRADES on digits, alpha_train 2, beta 6: the ceiling is 10 * 2.30 * 7.39 * 7 = 1191; the
   run above had 2.1e32 in epoch 1.) Why not "K times the first epoch's loss": the run above
   exploded in its first epoch, which would then be the reference.
2. **Accuracy collapse.** The training attack's accuracy (the fraction of training examples the
   model still classifies right at the attack's points, before the step) is at chance, at most
   ``1.5 / C``, after an earlier epoch where it was clearly above chance, at least
   ``1 / C + max(0.1, 1 / C)``. A model that had learned and now answers like a constant has
   broken; a weak model under a strong attack (accuracy near 0 from the start) is not flagged.

The likely cause named is a too high learning rate, or a too large alpha_train when one is set.
``--no-divergence-stop`` keeps training anyway (the rule then only warns). The stacked trainer
and the sweep apply the same function to each run's history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wmrbench.core.config import Defense, TrainConfig
from wmrbench.core.errors import WmrbenchError, render_settings, setting

LOSS_FACTOR = 10.0  # the loss ceiling is this many times the largest starting loss
CHANCE_TOLERANCE = 1.5  # "at chance": training attack accuracy <= this many times 1/C
ABOVE_CHANCE_MARGIN = 0.1  # "clearly above chance": >= 1/C + max(this, 1/C)


@dataclass(frozen=True)
class DivergenceRule:
    """What the rule needs to know of a run: its number of classes and how much its objective can
    scale a per-example loss (:func:`loss_scale`)."""

    classes: int
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.classes < 2:
            raise ValueError(f"a classifier has at least 2 classes; got {self.classes}")
        if not self.loss_scale > 0:
            raise ValueError(f"loss_scale must be > 0; got {self.loss_scale}")

    @property
    def loss_ceiling(self) -> float:
        return LOSS_FACTOR * math.log(self.classes) * self.loss_scale

    @property
    def chance(self) -> float:
        return 1.0 / self.classes


def loss_scale(alpha_train: float, beta: float | None) -> float:
    """The most the training objective multiplies a per-example loss by: ``exp(alpha_train)``
    (the largest importance weight), times ``1 + beta`` for TRADES (``beta`` None: PGD-AT)."""
    scale = math.exp(min(alpha_train, 700.0))  # exp(710) overflows; such an alpha is refused elsewhere
    return scale * (1.0 + beta) if beta is not None else scale


@dataclass(frozen=True)
class Divergence:
    """Why the run is taken to have diverged, at which epoch (1-based, as printed)."""

    epoch: int
    what: str


def diverged(history: Sequence[Mapping[str, Any]], rule: DivergenceRule) -> Divergence | None:
    """The rule applied to the LAST epoch of ``history`` (earlier epochs only as its past).

    ``history``: one mapping per finished epoch, oldest first, each with ``epoch`` (1-based),
    ``loss`` (the epoch's mean training loss) and ``adv_accuracy`` (the training attack's
    accuracy, in [0, 1]). Call it after each epoch; a non-finite loss is the finiteness guard's
    business and is not judged here.
    """
    if not history:
        return None
    last = history[-1]
    epoch, loss, accuracy = int(last["epoch"]), float(last["loss"]), float(last["adv_accuracy"])
    if math.isfinite(loss) and loss > rule.loss_ceiling:
        return Divergence(epoch, (
            f"the mean loss {loss:.4g} of epoch {epoch} is over {LOSS_FACTOR:g}x the largest starting loss "
            f"({rule.loss_ceiling:.4g} = {LOSS_FACTOR:g} * ln({rule.classes}) * {rule.loss_scale:.4g})"
        ))
    above = rule.chance + max(ABOVE_CHANCE_MARGIN, rule.chance)
    best = max((float(h["adv_accuracy"]) for h in history[:-1]), default=-1.0)
    if best >= above and accuracy <= CHANCE_TOLERANCE * rule.chance:
        return Divergence(epoch, (
            f"the training attack's accuracy fell to {100 * accuracy:.2f}% in epoch {epoch}, chance for "
            f"{rule.classes} classes, from {100 * best:.2f}% before"
        ))
    return None


def likely_cause(lr: float, alpha_train: float) -> str:
    """The one-line guess that ends a divergence message."""
    cause = f"learning rate {lr:g} too high"
    if alpha_train > 0:
        cause += f" (or alpha_train {alpha_train:g} too large)"
    return cause + "?"


class Diverged(WmrbenchError):
    """The loss or the weights stopped being finite (a too large lr, a too large alpha_train)."""

    def __init__(self, what: str, epoch: int, finite: bool = False) -> None:
        super().__init__(what)
        self.what, self.epoch, self.finite = what, epoch, finite  # finite: the divergence rule, not NaN


def check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Once per epoch, before saving: every floating-point parameter and buffer is finite (one
    host sync), so a checkpoint never holds NaN weights."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
        raise Diverged(f"the weights are not finite at the end of epoch {epoch + 1}", epoch)


def check_history(
    cfg: TrainConfig, classes: int, history: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], epoch: int,
    console: Any,
) -> None:
    """The rule on the run's history with this epoch's statistics (read back once per epoch
    already): Diverged, or with ``divergence_stop`` off a warning line on ``console``."""
    rule = DivergenceRule(classes, loss_scale(cfg.alpha_train, cfg.beta if cfg.defense is Defense.TRADES else None))
    found = diverged([*history, stats], rule)
    if found is None:
        return
    if cfg.divergence_stop:
        raise Diverged(found.what, epoch, finite=True)
    console.print(render_settings(f"Warning: run {cfg.run}: {found.what}; {likely_cause(cfg.lr, cfg.alpha_train)} "
                                  f"(going on: {setting('divergence_stop', False)})"), markup=False, soft_wrap=True)


def diverged_line(cfg: TrainConfig, last: Path, exc: Diverged, sweep: bool) -> str:
    """The one line that says a run stopped: why, what was kept, what to do."""
    epoch = exc.epoch
    kept = f"the last good checkpoint {last} (epoch {epoch}) is kept" if epoch else "no checkpoint was written"
    lower = f"{setting('lr')} (now {cfg.lr:g})"
    if cfg.alpha_train > 0:
        lower += f" or {setting('alpha_train')} (now {cfg.alpha_train:g})"
    advice = f"{likely_cause(cfg.lr, cfg.alpha_train)} train a new {setting('run')} with a lower {lower}"
    if exc.finite:  # the rule's judgement, not NaN: someone who knows better may go on
        advice += f", or pass {setting('divergence_stop', False)} to go on anyway"
    # Rendered now: the line is kept in SweepResult.failures, read (and printed) after the command's block.
    if sweep:
        return render_settings(f"run {cfg.run!r} diverged: {exc.what}; it stopped, the other runs went on; {kept}; {advice}")
    return render_settings(f"training diverged: {exc.what}; stopped, {kept}; {advice}")
