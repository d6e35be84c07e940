"""Per-batch scorers of the evaluation pipeline: what happens to one batch of examples.

* :class:`AttackScorer` (``evaluate``): a clean forward (A_nat), ONE unweighted attack (PGD by
  default, ``--attack``: A_rob and every A_sa) and ONE weighted attack call in which all alpha_test values run side by side: the
  batch is stacked once per alpha and each copy carries its alpha (A_tr). Random starts are
  keyed on (seed, example index), so an example's result does not depend on its batch, the
  batch size or its place in the stack.
* :class:`PointsScorer` (``attack``): the same attacks, keeping their points as well.
* :class:`ReplayScorer` (``evaluate --adversarial``): the model at points saved earlier.

All three build their record columns with :func:`batch_columns`, from the logits at the clean,
PGD and stacked weighted points, so a replay on the attacked model reproduces ``evaluate``.

Each scorer takes ``stage``, a callable told the name of each attack as it starts (the progress
bar shows it); it costs no host sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench import attacks
from wmrbench.core.attack_config import AttackMethod, InnerLoss
from wmrbench.core.config import EvalConfig, number_key
from wmrbench.evaluation.adversarial_file import PGD, AdversarialSet
from wmrbench.results.records import WEIGHTED_RULE, tr_columns, tr_restart_column

Stage = Callable[[str], None]
CLEAN_COLUMNS = ("index", "label", "clean_correct", "clean_margin")  # the same under any restart rule


def no_stage(name: str) -> None:
    """A ``stage`` that shows nothing."""


@dataclass
class BatchAttacks:
    """Everything the attacks found on one batch (the stacked attack holds k copies, alpha-major)."""

    clean_logits: Tensor
    rob: attacks.AttackResult  # unweighted PGD: A_rob and every A_sa
    stacked: attacks.AttackResult  # weighted PGD, one copy of the batch per alpha_test: A_tr


def _attack_options(cfg: EvalConfig, weighted: bool, stage: Stage = no_stage) -> tuple[str, dict[str, object]]:
    """The registered attack (and its own options) for the uniform attack or its weighted form.

    PGD and APGD are weighted by wmrbench; AutoAttack is not, so A_tr then runs weighted APGD-CE,
    the strongest weighted attack of its ensemble. AutoAttack names its own attacks as they start.
    """
    method = cfg.method
    if method is AttackMethod.AUTOATTACK:
        if weighted:
            return AttackMethod.APGD_CE.value, {}
        return method.value, {"version": cfg.aa_version.value, "stage": lambda name: stage(f"autoattack {name}")}
    if method is AttackMethod.PGD:
        return method.value, {"loss": InnerLoss.CE, "compile_model": cfg.compile}
    return method.value, {}


def _run(name_options: tuple[str, dict[str, object]], model: nn.Module, x: Tensor, y: Tensor, cfg: EvalConfig,
         alpha: Tensor | None, index: Tensor) -> attacks.AttackResult:
    name, options = name_options
    return attacks.get_attack(name).run(model, x, y, cfg.attack, alpha=alpha, index=index, seed=cfg.seed,
                                        precision=cfg.precision, **options)


def run_batch_attacks(
    model: nn.Module, index: Tensor, x: Tensor, y: Tensor, cfg: EvalConfig, stage: Stage = no_stage,
) -> BatchAttacks:
    """Clean forward, ONE unweighted attack and ONE stacked weighted attack over all alpha_test values."""
    stage("clean")
    clean_logits = attacks.predict(model, x, cfg.precision)
    stage(cfg.method.value)
    rob = _run(_attack_options(cfg, weighted=False, stage=stage), model, x, y, cfg, None, index)
    k, n = len(cfg.alpha_test), len(y)
    alpha = torch.tensor(cfg.alpha_test, device=x.device).repeat_interleave(n)
    weighted = _attack_options(cfg, weighted=True)
    # Every alpha_test runs at once, stacked in one call: one stage names them all.
    stage(f"weighted {weighted[0]}, alpha {', '.join(number_key(a) for a in cfg.alpha_test)}")
    stacked = _run(weighted, model, x.repeat(k, 1, 1, 1), y.repeat(k), cfg, alpha, index.repeat(k))
    return BatchAttacks(clean_logits, rob, stacked)


def batch_columns(
    index: Tensor, y: Tensor, clean_logits: Tensor, pgd_logits: Tensor, stacked_logits: Tensor,
    alpha_test: tuple[float, ...], pgd_restart: Tensor | None = None, stacked_restart: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-example record columns from the logits at the clean, PGD and stacked weighted points,
    and (when known) which restart each attack kept."""
    k, n = len(alpha_test), len(y)
    columns = {
        "index": index,
        "label": y,
        "clean_correct": clean_logits.argmax(1) == y,
        "clean_margin": attacks.margin(clean_logits, y),
        "pgd_correct": pgd_logits.argmax(1) == y,
        "pgd_margin": attacks.margin(pgd_logits, y),
    }
    tr_correct = (stacked_logits.argmax(1) == y.repeat(k)).view(k, n)
    tr_margin = attacks.margin(stacked_logits, y.repeat(k)).view(k, n)
    for j, alpha_value in enumerate(alpha_test):
        correct_col, margin_col = tr_columns(alpha_value)
        columns[correct_col] = tr_correct[j]
        columns[margin_col] = tr_margin[j]
    if pgd_restart is not None and stacked_restart is not None:
        columns["pgd_restart"] = pgd_restart
        for j, restarts in enumerate(stacked_restart.view(k, n)):
            columns[tr_restart_column(alpha_test[j])] = restarts
    return columns


def attack_columns(index: Tensor, y: Tensor, found: BatchAttacks, alpha_test: tuple[float, ...]) -> dict[str, Tensor]:
    """The record columns; under restart_rule max-ce also the weighted rule's picks among the same
    restarts, prefixed ``weighted_rule.`` (one attack run, both rules: records.under_weighted_rule)."""
    columns = batch_columns(index, y, found.clean_logits, found.rob.logits, found.stacked.logits, alpha_test,
                            found.rob.restart, found.stacked.restart)
    stacked = found.stacked.weighted_pick
    if stacked is not None:
        # AutoAttack (the uniform attack) chooses its own points: the same under either rule.
        rob = found.rob.weighted_pick or found.rob
        weighted = batch_columns(index, y, found.clean_logits, rob.logits, stacked.logits, alpha_test,
                                 rob.restart, stacked.restart)
        columns.update({WEIGHTED_RULE + key: values for key, values in weighted.items() if key not in CLEAN_COLUMNS})
    return columns


class AttackScorer:
    """``evaluate``: attack the batch, keep its record columns."""

    what = "attacking"

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg

    def __call__(self, model: nn.Module, index: Tensor, x: Tensor, y: Tensor, stage: Stage = no_stage) -> dict[str, Tensor]:
        return attack_columns(index, y, run_batch_attacks(model, index, x, y, self.cfg, stage), self.cfg.alpha_test)


class PointsScorer(AttackScorer):
    """``attack``: the record columns plus the clean inputs and every attack's points.

    The stacked points come back alpha-major ([k*n, ...]); they are regrouped per example
    ([n, k, ...]) so that the rows of later batches concatenate per example.
    """

    def __call__(self, model: nn.Module, index: Tensor, x: Tensor, y: Tensor, stage: Stage = no_stage) -> dict[str, Tensor]:
        found = run_batch_attacks(model, index, x, y, self.cfg, stage)
        k, n = len(self.cfg.alpha_test), len(y)
        columns = attack_columns(index, y, found, self.cfg.alpha_test)
        columns.update(
            x=x, pgd_x_adv=found.rob.x_adv,
            tr_x_adv=found.stacked.x_adv.reshape(k, n, *x.shape[1:]).transpose(0, 1),
        )
        return columns


class ReplayScorer:
    """``evaluate --adversarial``: the model at the file's clean and adversarial points, no attack.

    The scorer is called with positions in the file (the pipeline's ``index``); the records keep
    the file's own example indices.
    """

    what = "scoring"

    def __init__(self, adv: AdversarialSet, cfg: EvalConfig) -> None:
        self.adv, self.cfg = adv, cfg
        self.keys: list[float] = list(cfg.alpha_test)  # the file's weighted attacks, by their alphas
        self.held: dict[str | float, Tensor] = {}

    def __call__(self, model: nn.Module, pos: Tensor, x: Tensor, y: Tensor, stage: Stage = no_stage) -> dict[str, Tensor]:
        stage("saved points")
        if not self.held:  # the points go to the model's device once, not once per batch
            self.held.update({key: self.adv.attacks[key].x_adv.to(pos.device) for key in [PGD, *self.keys]})
            self.held["index"] = self.adv.index.to(pos.device)
            if all(self.adv.attacks[key].restart is not None for key in [PGD, *self.keys]):
                self.held.update({f"restart {key}": self.adv.attacks[key].restart.to(pos.device) for key in [PGD, *self.keys]})
        precision = self.cfg.precision
        # The stacked points, alpha-major, exactly as evaluate's weighted attack scored them.
        stacked = torch.cat([self.held[key][pos] for key in self.keys]).to(x.dtype)
        restarts = (self.held[f"restart {PGD}"][pos], torch.cat([self.held[f"restart {key}"][pos] for key in self.keys])) \
            if f"restart {PGD}" in self.held else (None, None)
        return batch_columns(
            self.held["index"][pos], y, attacks.predict(model, x, precision),
            attacks.predict(model, self.held[PGD][pos].to(x.dtype), precision),
            attacks.predict(model, stacked, precision), self.cfg.alpha_test, *restarts,
        )
