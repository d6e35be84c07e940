"""The planner the reproduction commands share (``reproduce table1``, ``reproduce family`` and
``demo``): the training runs and the evaluations of them that make a table, which of them are
done, and doing the rest.

A :class:`Plan` is made once from a command's settings, before any work: every run's
:class:`~wmrbench.core.config.TrainConfig` and every evaluation's :class:`~wmrbench.core.config.EvalConfig`
is built then, so a bad setting is one line before hours of training, and everything after reads
the plan instead of deriving it again. What makes a reproduction resumable, on this machine or
another one with the folders copied over:

* a run is finished when its ``last.pt`` holds every epoch (:func:`finished_epochs`); an
  unfinished one is resumed from it, runs with the same data settings side by side as one sweep
  (:func:`train_pending`);
* an evaluation is done when its ``summary.json`` is complete and was measured as planned
  (:data:`EVAL_KEYS`) on the finished model (:data:`TRAIN_KEYS` of the checkpoint's config):
  :func:`current_result`; anything else is evaluated again, one killed part-way continuing from
  its saved batches (:func:`evaluate_planned`);
* every path comes from the plan (checkpoint, results and data folders), never from the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wmrbench.core.config import DatasetName, EvalConfig, Protocol, TrainConfig, to_jsonable, with_options
from wmrbench.core.errors import RERUN_TO_CONTINUE, Interrupted, WmrbenchError, setting
from wmrbench.evaluation import evaluate_source
from wmrbench.evaluation.partial import has_partial
from wmrbench.core.io import lock_folder
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.core.presets import eval_config
from wmrbench.results.records import SUMMARY_NAME, Summary, read_summary
from wmrbench.training.stacked import DEFAULT_STACK, Stack, fit_groups
from wmrbench.training import SHARED_BY_SWEEP, run_dir
from wmrbench.results.uncertainty import with_uncertainty

Log = Callable[[str], None]
T = TypeVar("T")

# What an evaluation must have been measured with to count as done.
EVAL_KEYS = ("dataset", "attack", "alpha_test", "n_examples", "seed", "precision", "protocol", "method")
# What the evaluated model must have been trained with (from the checkpoint's config it records).
TRAIN_KEYS = ("defense", "alpha_train", "epochs", "seed", "arch")


@dataclass(frozen=True)
class PlannedEval:
    """One evaluation of a planned run: the settings given on top of its data set's preset (what
    :func:`wmrbench.evaluation.evaluate_source` takes), and the config they make."""

    model: TrainConfig
    name: str  # the result's folder under the config's results_dir
    dataset: DatasetName
    options: Mapping[str, Any]
    config: EvalConfig
    # the model's settings a result must have been measured on (its checkpoint's config)
    train_keys: tuple[str, ...] = TRAIN_KEYS

    @property
    def folder(self) -> Path:
        return Path(self.config.results_dir) / self.name

    @property
    def checkpoint(self) -> Path:
        return run_dir(self.model) / "last.pt"


def planned_eval(model: TrainConfig, name: str, dataset: DatasetName, options: Mapping[str, Any],
                 train_keys: tuple[str, ...] = TRAIN_KEYS) -> PlannedEval:
    """The evaluation of ``model`` into ``name``: its config is built now (every setting checked)."""
    config = with_options(eval_config(dataset, name, options.get("protocol") or Protocol.DEFAULT), options)
    return PlannedEval(model, name, dataset, dict(options), config, train_keys)


@dataclass(frozen=True)
class Plan:
    """The runs a reproduction trains and the evaluations it measures of them, in table order;
    ``folder`` is where the table goes (locked while the plan is carried out)."""

    folder: Path
    runs: tuple[TrainConfig, ...]
    evals: tuple[PlannedEval, ...]


def finished_epochs(run: TrainConfig) -> int:
    """Epochs in ``run``'s last.pt (0 without one); more than planned is an error (another run)."""
    last = run_dir(run) / "last.pt"
    if not last.is_file():
        return 0
    done = int(read_checkpoint(last).get("epoch", 0))
    if done > run.epochs:
        raise WmrbenchError(
            f"{last} holds {done} epochs, more than the {run.epochs} planned: it is another run; "
            f"give the {setting('epochs')} it was trained with, or another {setting('checkpoint_dir')}"
        )
    return done


def current_result(planned: PlannedEval) -> tuple[Summary | None, str]:
    """The evaluation's complete result when it was measured as planned on the finished model,
    else (None, why it must be evaluated)."""
    path = planned.folder / SUMMARY_NAME
    if not path.is_file():
        return None, "not evaluated yet"
    try:
        summary = with_uncertainty(read_summary(path), path.parent)  # a v1 summary: intervals from its records
    except WmrbenchError as exc:
        return None, f"its result is not usable ({exc})"
    want, have = to_jsonable(planned.config), to_jsonable(summary.config)
    differ = [k for k in EVAL_KEYS if want[k] != have.get(k)]
    planned_run, trained = to_jsonable(planned.model), summary.model.train_config
    differ += [f"model {k}" for k in planned.train_keys if trained.get(k) != planned_run[k]]
    if differ:
        return None, f"its result was measured otherwise: {', '.join(differ)}"
    return summary, "evaluated already"


def train_pending(runs: tuple[TrainConfig, ...] | list[TrainConfig], log: Log, show_progress: bool,
                  stop_after_epochs: int | None, stack: Stack | str = DEFAULT_STACK) -> tuple[list[str], list[str]]:
    """Train what is not trained: finished runs (every epoch in ``last.pt``) are skipped, unfinished
    ones resume; runs with the same data settings train side by side as one sweep. Returns (the
    runs that took epochs now, the runs still short of their epochs). A run that diverged ends it
    in one line."""
    todo = []
    for run in runs:
        done = finished_epochs(run)
        if done == run.epochs:
            log(f"{run.run}: trained ({done}/{run.epochs} epochs), skipped")
        else:
            log(f"{run.run}: resuming at epoch {done + 1} of {run.epochs}" if done else f"{run.run}: training, {run.epochs} epochs")
            todo.append(run)
    groups: dict[tuple[Any, ...], list[TrainConfig]] = {}
    for run in todo:
        groups.setdefault(tuple(getattr(run, k) for k in SHARED_BY_SWEEP), []).append(run)
    # One sweep per seed; with --stack on, every seed's runs as one stack (fit_groups).
    result = fit_groups(list(groups.values()), stack=stack, resume=True, missing_ok=True,
                        stop_after_epochs=stop_after_epochs, show_progress=show_progress)
    if result.failures:
        first, *rest = result.failures.values()
        raise WmrbenchError(first + (f" (and {len(rest)} more run(s) diverged)" if rest else ""))
    return [run.run for run in todo], [run.run for run in runs if finished_epochs(run) < run.epochs]


def evaluate_planned(planned: PlannedEval, log: Log, show_progress: bool, replace: bool = False) -> tuple[Summary, bool]:
    """The planned evaluation's result: the one on disk when it is current (:func:`current_result`),
    else measured now. Returns (the summary, whether it was measured now). A result measured
    otherwise is replaced; one killed part-way continues from its saved batches (the same records
    as one uninterrupted run; saved batches of settings that differ are refused by name).
    ``replace``: measure it again whatever is on disk (the demo's own results)."""
    if not replace:
        summary, why = current_result(planned)
        if summary is not None:
            log(f"{planned.name}: {why}, skipped")
            return summary, False
        log(f"{planned.name}: evaluating ({why})")
    stale = replace or (planned.folder / SUMMARY_NAME).exists()
    resume = not stale and has_partial(planned.folder)
    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(planned.checkpoint))
    result = evaluate_source(source, planned.options, planned.dataset, planned.name, show_progress=show_progress,
                             overwrite=stale, resume=resume)
    return result.summary, True


@dataclass
class Work:
    """What one invocation did: the runs that took epochs, the evaluations measured, the runs
    still short of their epochs, and every evaluation's summary (in plan order) once all are done."""

    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)


def carry_out(plan: Plan, write: Callable[[Work], T], log: Log, show_progress: bool, stop_after_epochs: int | None,
              stack: Stack | str = DEFAULT_STACK) -> tuple[Work, T | None]:
    """Train what is not trained, evaluate what is not evaluated, then ``write`` the table from
    the summaries; None in its place while a run is short of its epochs (rerun to go on). One
    reproduction holds its table folder at a time; taking it also checks it is writable, before
    hours of training rather than after."""
    with lock_folder(plan.folder, "reproduction folder", "wait for that reproduce to finish"):
        work = Work()
        try:
            work.trained, work.unfinished = train_pending(plan.runs, log, show_progress, stop_after_epochs, stack)
            if work.unfinished:
                log(f"stopped with {len(work.unfinished)} run(s) unfinished ({', '.join(work.unfinished)}); "
                    "run the same command again to continue")
                return work, None
            for planned in plan.evals:
                summary, measured = evaluate_planned(planned, log, show_progress)
                work.summaries.append(summary)
                if measured:
                    work.evaluated.append(planned.name)
            return work, write(work)
        except KeyboardInterrupt:  # one short line, not one resume command per run
            raise Interrupted(RERUN_TO_CONTINUE) from None
