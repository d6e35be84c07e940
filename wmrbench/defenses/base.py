"""What a defense is to training: its training attack and its per-mini-batch loss.

:func:`wmrbench.training.train_step` runs the same three things for every defense: the
training attack (:mod:`wmrbench.attacks.pgd`, with the defense's inner loss, and the PGD
steps each example survived when the defense asks for them), the training-mode forward passes
the loss needs, and the defense's loss. A new defense is one module that builds a
:class:`DefenseSpec` and one line in :mod:`wmrbench.defenses` that imports it; training has
no branch per defense.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from wmrbench.core.attack_config import InnerLoss
from wmrbench.core.config import TrainConfig
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.defenses.objectives import Objective


@dataclass(frozen=True)
class LossInputs:
    """What one step hands a defense's loss (logits are the training-mode forward passes)."""

    logits_adv: Tensor  # f(x') in train mode
    logits_nat: Tensor | None  # f(x) in train mode, when the spec asks for it (else None)
    y: Tensor
    survived: Tensor | None  # per example, PGD steps started from a correct point (GAIRAT's kappa)
    epoch: int  # 0-based epoch of the step (burn-in)


LossFn = Callable[[LossInputs, TrainConfig], Objective]


@dataclass(frozen=True)
class DefenseSpec:
    name: str  # the --defense value (a wmrbench.core.config.Defense value)
    summary: str  # one line for --help and docs
    inner_loss: InnerLoss  # what the training attack ascends: CE, or TRADES' KL (needs f(x))
    natural_forward: bool  # the loss also needs the train-mode logits at the clean x
    loss: LossFn
    alpha_weighted: bool = False  # takes alpha_train ("+ours"), --detach-weights, --normalize-weights
    counts_survived: bool = False  # the training attack must return kappa per example
    min_steps: int = 0  # fewest training attack steps the loss is defined for
    # the loss is ``base``'s, unweighted, for the first cfg.burn_in epochs (GAIRAT: "PGD-AT"); "" if none
    burn_in_base: str = ""


def check_spec(spec: DefenseSpec, cfg: TrainConfig) -> None:
    """One line, before any work, for settings this defense does not use or cannot take."""
    if not spec.alpha_weighted:
        given = [name for name, on in ((setting("alpha_train"), cfg.alpha_train > 0), (setting("detach_weights"), cfg.detach_weights),
                                       (setting("normalize_weights"), cfg.normalize_weights)) if on]
        if given:
            raise WmrbenchError(
                f"{', '.join(given)}: the exp(-alpha * margin) weight ('+ours') applies to {setting('defense')} pgd and trades "
                f"only; {setting('defense', spec.name)} brings its own weighting (leave alpha_train at 0)"
            )
    if spec.burn_in_base and cfg.burn_in >= cfg.epochs:
        # Every epoch would train the unweighted base loss: weights bit for bit those of the base
        # defense, labelled as this one.
        raise WmrbenchError(
            f"{setting('burn_in')} {cfg.burn_in} leaves no epoch of {cfg.epochs} ({setting('epochs')}) for "
            f"{setting('defense', spec.name)}'s reweighting: the run would be plain {spec.burn_in_base}; give "
            f"{setting('burn_in')} below {cfg.epochs}, or leave it out to scale the preset's with {setting('epochs')}"
        )
    if cfg.attack.steps < spec.min_steps:
        raise WmrbenchError(
            f"{setting('defense', spec.name)} needs at least {spec.min_steps} training attack steps ({setting('steps')}); got {cfg.attack.steps}"
        )
