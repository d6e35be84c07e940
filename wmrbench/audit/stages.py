"""The attacks an audit runs ("stages"), each over the same examples, and their saved records.

A stage is one registered attack at one budget, optionally with its weighted form at every
audit alpha (stacked, as ``evaluate`` stacks them). Its per-example records have ``evaluate``'s
columns (:func:`wmrbench.evaluation.scorers.batch_columns`: clean, ``pgd_*`` for the unweighted
attack, ``tr_*@alpha`` for the weighted one), so :func:`wmrbench.metrics.compute_metrics` reads
A_nat, A_rob, A_sa and A_tr off any stage. Batches go through the evaluation pipeline's
:func:`~wmrbench.evaluation.pipeline.collect`; starts are keyed on (seed, example index), so the
base stage's numbers are exactly ``evaluate``'s with the same attack, examples and seed.

Resume: a finished stage is written to ``<run>/audit/<stage>.csv``, then ``<stage>.json`` (its
settings and the SHA-256 of the model's weights and of the examples) marks it complete, both
atomically. A stage whose json matches what is planned is read back instead of run, so a killed
audit run again continues with the stage it was in (a stage is minutes at most on the CPU).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from wmrbench import attacks
from wmrbench.audit.config import AuditConfig
from wmrbench.core.attack_config import AttackConfig, InnerLoss
from wmrbench.core.config import EvalConfig, to_jsonable
from wmrbench.data import ImageSet
from wmrbench.evaluation.pipeline import collect, records_frame
from wmrbench.evaluation.scorers import Stage as ShowStage, batch_columns, no_stage
from wmrbench.core.io import atomic_write_json, atomic_write_text
from wmrbench.results.records import to_csv_text

STAGES_DIR = "audit"


@dataclass(frozen=True)
class Stage:
    name: str  # the file stem, e.g. "pgd-s40-r1"
    attack: str  # a registered attack
    config: AttackConfig
    weighted: bool  # also its weighted form at every audit alpha (A_tr)
    options: tuple[tuple[str, Any], ...] = ()  # the attack's own options (temperatures, queries)


def base_stage(cfg: AuditConfig) -> Stage:
    """PGD-CE exactly as ``evaluate`` runs it (the preset, 1 restart unless told), weighted."""
    return Stage(f"pgd-s{cfg.base.attack.steps}-r{cfg.base.attack.restarts}", "pgd", cfg.base.attack, True)


def budget_stages(cfg: AuditConfig) -> list[Stage]:
    """Check 2: PGD-CE at every step count of the grid with one restart, and with every restart
    count at the step counts up to the base attack's (MNIST: 10, 40, 100 steps; 1 and 5 restarts
    at 10 and 40 steps: 100 steps x 5 restarts alone would cost as much as the rest of the audit).
    Every budget walks the base attack's total distance (steps x step size), so a longer attack
    is a finer one, not a farther-reaching one; the base budget is the base stage itself."""
    base = cfg.base.attack
    stages = []
    for steps in cfg.steps_grid:
        for restarts in cfg.restarts_grid:
            if restarts > 1 and steps > base.steps:
                continue
            step_size = base.step_size if steps == base.steps else base.step_size * base.steps / steps
            attack = replace(base, steps=steps, restarts=restarts, step_size=step_size)
            same = steps == base.steps and restarts == base.restarts
            stages.append(base_stage(cfg) if same else Stage(f"pgd-s{steps}-r{restarts}", "pgd", attack, False))
    return stages


def eps_stages(cfg: AuditConfig) -> list[Stage]:
    """Check 1: PGD-CE at each larger eps, the step size scaled with eps (the same number of
    steps crosses the larger ball as the base attack crosses its own)."""
    base = cfg.base.attack
    return [Stage(f"pgd-eps{eps:g}", "pgd", replace(base, eps=eps, step_size=base.step_size * eps / base.eps), False)
            for eps in cfg.eps_grid if eps != base.eps]


def adaptive_stages(cfg: AuditConfig) -> list[Stage]:
    """Check 4: logit-scaling PGD and margin PGD at the base budget, weighted too."""
    base = cfg.base.attack
    return [Stage("pgd-lsa", "pgd-lsa", base, True, (("temperatures", cfg.temperatures),)),
            Stage("pgd-cw", "pgd-cw", base, True)]


def square_stage(cfg: AuditConfig) -> Stage:
    """Check 3: the black-box Square attack at the base eps (it has no weighted form)."""
    return Stage("square", "square", cfg.base.attack, False, (("queries", cfg.square_queries),))


class StageScorer:
    """One stage on one batch: clean logits, the unweighted attack, the weighted one stacked
    over the alphas; the columns of ``evaluate``'s records."""

    what = "auditing"

    def __init__(self, stage: Stage, cfg: EvalConfig) -> None:
        self.stage, self.cfg = stage, cfg

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor, alpha: Tensor | None) -> attacks.AttackResult:
        options = dict(self.stage.options)
        if self.stage.attack == "pgd":
            options["loss"] = InnerLoss.CE
        return attacks.get_attack(self.stage.attack).run(
            model, x, y, self.stage.config, alpha=alpha, index=index, seed=self.cfg.seed,
            precision=self.cfg.precision, **options)

    def __call__(self, model: nn.Module, index: Tensor, x: Tensor, y: Tensor, stage: ShowStage = no_stage) -> dict[str, Tensor]:
        stage(self.stage.name)
        clean = attacks.predict(model, x, self.cfg.precision)
        rob = self._run(model, x, y, index, None)
        alphas = self.cfg.alpha_test if self.stage.weighted else ()
        if alphas:
            k = len(alphas)
            alpha = torch.tensor(alphas, device=x.device).repeat_interleave(len(y))
            stacked = self._run(model, x.repeat(k, 1, 1, 1), y.repeat(k), index.repeat(k), alpha)
            stacked_logits, stacked_restart = stacked.logits, stacked.restart
        else:
            stacked_logits = rob.logits[:0]
            stacked_restart = rob.restart[:0]
        return batch_columns(index, y, clean, rob.logits, stacked_logits, alphas, rob.restart, stacked_restart)


@dataclass(frozen=True)
class Fingerprint:
    """What a saved stage must share with the audit now: weights, examples, seed, precision."""

    model_sha256: str
    data_sha256: str
    seed: int
    precision: str


def stage_record(stage: Stage, fingerprint: Fingerprint, alphas: tuple[float, ...]) -> dict[str, Any]:
    return {"stage": to_jsonable(stage), "alpha_test": list(alphas) if stage.weighted else [],
            **to_jsonable(fingerprint)}


def load_saved(folder: Path, name: str, record: dict[str, Any]) -> pd.DataFrame | None:
    """The saved records of a stage planned as ``record``; None if absent or planned otherwise."""
    meta, table = folder / f"{name}.json", folder / f"{name}.csv"
    try:
        if json.loads(meta.read_text()) != json.loads(json.dumps(record)) or not table.is_file():
            return None
        return pd.read_csv(table)
    except (OSError, ValueError):
        return None  # unreadable or half-written by a killed run: run the stage again


def save(folder: Path, name: str, record: dict[str, Any], frame: pd.DataFrame) -> None:
    (folder / f"{name}.json").unlink(missing_ok=True)  # the old marker goes first
    atomic_write_text(folder / f"{name}.csv", to_csv_text(frame))  # evaluate's format: exact round trip
    atomic_write_json(folder / f"{name}.json", record)


def run_stage(
    model: nn.Module, data: ImageSet, stage: Stage, cfg: EvalConfig, folder: Path, fingerprint: Fingerprint,
    show_progress: bool,
) -> pd.DataFrame:
    """The stage's records: read back if saved with the same plan, else attacked and saved."""
    record = stage_record(stage, fingerprint, cfg.alpha_test)
    saved = load_saved(folder, stage.name, record)
    if saved is not None:
        return saved
    scorer = StageScorer(stage, cfg)
    frame = records_frame(collect(model, data, cfg, scorer, show_progress, f"audit {stage.name}"))
    save(folder, stage.name, record, frame)
    # Read back: a resumed audit reads the same CSV, so its numbers are the same to the last digit.
    return pd.read_csv(folder / f"{stage.name}.csv")
