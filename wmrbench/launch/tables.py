"""``reproduce table1`` and ``reproduce family`` as jobs: what is left to do, as single runs.

A reproduction is trainings, then evaluations of the trained models, then a table. As jobs, each
stage is one launch: first one job per run short of its epochs; once every run is trained, one
job per evaluation not yet measured as planned; once all are, the table is written in the
command's own process (which then finds nothing to train or evaluate). The same command, run
again, moves to the next stage: the reproduction's own resume rule decides what is finished.
``--seeds`` plugs in through the planners (``planned_runs``): one run per (model, seed).
"""

from __future__ import annotations

from dataclasses import dataclass

from wmrbench.studies import family, reproduce
from wmrbench.core.config import TrainConfig
from wmrbench.evaluation.partial import has_partial
from wmrbench.evaluation.pipeline import plan as plan_evaluation
from wmrbench.evaluation.pipeline import result_dir
from wmrbench.launch.specs import EvalSpec, Spec, TrainSpec
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.studies.planner import Plan, PlannedEval, current_result, finished_epochs
from wmrbench.results.records import SUMMARY_NAME


@dataclass(frozen=True)
class Stage:
    """What a reproduction has left: ``train`` or ``evaluate`` with its runs, or ``table``."""

    name: str
    specs: tuple[Spec, ...] = ()


def _train_stage(runs: tuple[TrainConfig, ...]) -> Stage | None:
    # resume=True: a run with a last.pt continues from it, one without starts (fit_sweep's missing_ok).
    todo = tuple(TrainSpec(run, resume=True) for run in runs if finished_epochs(run) < run.epochs)
    return Stage("train", todo) if todo else None


def _eval_spec(planned: PlannedEval) -> EvalSpec:
    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(planned.checkpoint))
    _, cfg = plan_evaluation(source, planned.options, planned.dataset, planned.name)
    folder = result_dir(cfg)
    stale = (folder / SUMMARY_NAME).exists()  # a result measured otherwise is replaced, as inline
    return EvalSpec(source, cfg, overwrite=stale, resume=not stale and has_partial(folder))


def stage(plan: Plan) -> Stage:
    """The next stage of a planned reproduction: its runs short of their epochs, else its
    evaluations not measured as planned, else its table."""
    training = _train_stage(plan.runs)
    if training is not None:
        return training
    todo = tuple(_eval_spec(planned) for planned in plan.evals if current_result(planned)[0] is None)
    return Stage("evaluate", todo) if todo else Stage("table")


def table1_stage(cfg: reproduce.ReproduceConfig) -> Stage:
    return stage(reproduce.plan(cfg))


def family_stage(cfg: family.FamilyConfig) -> Stage:
    return stage(family.plan(cfg))
