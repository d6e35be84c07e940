"""``reproduce table1`` and ``reproduce family`` as jobs: what is left to do, as single runs.

A reproduction is trainings, then evaluations of the trained models, then a table. As jobs, each
stage is one launch: first one job per run short of its epochs; once every run is trained, one
job per evaluation not yet measured as planned; once all are, the table is written in the
command's own process (which then finds nothing to train or evaluate). The same command, run
again, moves to the next stage: the reproduction's own resume rule decides what is finished.
``--seeds`` plugs in through the planners (``planned_runs``): one run per (model, seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wmrbench import family, reproduce
from wmrbench.config import DatasetName, TrainConfig
from wmrbench.evaluation.partial import has_partial
from wmrbench.evaluation.pipeline import plan, result_dir
from wmrbench.launch.specs import EvalSpec, Spec, TrainSpec
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.records import SUMMARY_NAME
from wmrbench.training import run_dir


@dataclass(frozen=True)
class Stage:
    """What a reproduction has left: ``train`` or ``evaluate`` with its runs, or ``table``."""

    name: str
    specs: tuple[Spec, ...] = ()


def _train_stage(runs: list[TrainConfig]) -> Stage | None:
    # resume=True: a run with a last.pt continues from it, one without starts (fit_sweep's missing_ok).
    todo = tuple(TrainSpec(run, resume=True) for run in runs if reproduce.finished_epochs(run) < run.epochs)
    return Stage("train", todo) if todo else None


def _eval_spec(run: TrainConfig, options: Mapping[str, Any], dataset: DatasetName, name: str) -> EvalSpec:
    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(run_dir(run) / "last.pt"))
    _, cfg = plan(source, options, dataset, name)
    folder = result_dir(cfg)
    stale = (folder / SUMMARY_NAME).exists()  # a result measured otherwise is replaced, as inline
    return EvalSpec(source, cfg, overwrite=stale, resume=not stale and has_partial(folder))


def table1_stage(cfg: reproduce.ReproduceConfig) -> Stage:
    runs = reproduce.planned_runs(cfg)
    for run in runs:
        reproduce.planned_eval(cfg, run)  # every result's settings are checked before any work
    training = _train_stage(runs)
    if training is not None:
        return training
    todo = tuple(_eval_spec(run, reproduce.eval_options(cfg, run)[1], cfg.dataset, run.run)
                 for run in runs if reproduce.current_result(cfg, run)[0] is None)
    return Stage("evaluate", todo) if todo else Stage("table")


def family_stage(cfg: family.FamilyConfig) -> Stage:
    runs = family.planned_runs(cfg)
    for run in runs:
        for attack in cfg.attacks:
            family.planned_eval(cfg, run, attack)
    training = _train_stage(runs)
    if training is not None:
        return training
    todo = tuple(_eval_spec(run, family.eval_options(cfg, run, attack), cfg.data, family.result_name(run, attack))
                 for run in runs for attack in cfg.attacks if family.current_result(cfg, run, attack)[0] is None)
    return Stage("evaluate", todo) if todo else Stage("table")
