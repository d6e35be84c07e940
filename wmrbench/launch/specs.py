"""One single run as a job (train one config, evaluate one model), and the expansions of the
commands that do several runs into such runs.

A spec is what the command would do for that one run alone, with the same library call, so a run
launched as a job writes the files the command writes inline. A spec runs again with
``resume=True`` after a preemption and continues from what it saved (the last epoch's ``last.pt``,
the evaluation's saved batches): the result is byte for byte an uninterrupted run's.

The expansions are where a new kind of multi-run plugs in: ``train --seeds`` is one more loop over
configs before :func:`train_specs`, several ``evaluate --checkpoint`` are more sources given to
:func:`eval_specs`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from wmrbench.core.config import EvalConfig, TrainConfig
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.evaluation.partial import has_partial
from wmrbench.evaluation.pipeline import plan, result_dir
from wmrbench.evaluation.runs import evaluate_source, options_of
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.models.source import ModelSource
from wmrbench.results.records import SUMMARY_NAME
from wmrbench.training import config_for_run, fit_sweep, run_dir, run_options


@dataclass(frozen=True)
class RunOutcome:
    """What one job did: where its result lies, or its one-line error (settings marked as
    :func:`wmrbench.core.errors.setting` marks them; :func:`wmrbench.core.errors.render_settings` names them)."""

    name: str
    path: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TrainSpec:
    """Train one run (``cfg``); ``resume``: continue it from its ``last.pt`` (none yet: from scratch)."""

    cfg: TrainConfig
    resume: bool = False

    @property
    def name(self) -> str:
        return self.cfg.run

    @property
    def folder(self) -> Path:
        return run_dir(self.cfg)

    def done(self) -> bool:
        last = self.folder / "last.pt"
        return last.is_file() and int(read_checkpoint(last).get("epoch", 0)) >= self.cfg.epochs

    def resumed(self) -> TrainSpec:
        return dataclasses.replace(self, resume=True)

    def execute(self, show_progress: bool = False) -> RunOutcome:
        # missing_ok: a job preempted before its first epoch was saved starts afresh when requeued.
        result = fit_sweep([self.cfg], resume=self.resume, missing_ok=True, show_progress=show_progress)
        if result.failures:
            return RunOutcome(self.name, error=result.failures[self.cfg.run])
        return RunOutcome(self.name, path=str(result.results[0].checkpoint))


@dataclass(frozen=True)
class EvalSpec:
    """Evaluate one model (``source``) with ``cfg``'s settings into ``RESULTS_DIR/RUN/``."""

    source: ModelSource
    cfg: EvalConfig
    overwrite: bool = False
    resume: bool = False

    @property
    def name(self) -> str:
        return self.cfg.run

    @property
    def folder(self) -> Path:
        return result_dir(self.cfg)

    def done(self) -> bool:
        return (self.folder / SUMMARY_NAME).is_file() and not has_partial(self.folder)

    def resumed(self) -> EvalSpec:
        # A job that saved batches continues them; one that saved none starts as it first did.
        saved = has_partial(self.folder)
        return dataclasses.replace(self, overwrite=self.overwrite and not saved, resume=saved)

    def execute(self, show_progress: bool = False) -> RunOutcome:
        result = evaluate_source(self.source, options_of(self.cfg), self.cfg.dataset, self.cfg.run,
                                 show_progress=show_progress, overwrite=self.overwrite, resume=self.resume)
        return RunOutcome(self.name, path=str(result.out_dir))


Spec = Union[TrainSpec, EvalSpec]


def train_specs(
    dataset: str | None, defense: str | None, options: Mapping[str, Any], alphas: Sequence[float] | None, resume: bool,
    seeds: Sequence[int] | None = None,
) -> list[TrainSpec]:
    """One job per training run, as ``train`` names and configures it (:func:`run_options`): one
    per ``--alpha-train`` value (``RUN-aALPHA``) and per ``--seeds`` seed (``...-sSEED``), or the
    one run.

    ``resume``: a run with a ``last.pt`` continues it with its saved settings, one without starts
    afresh (a job may have been stopped before its first epoch was saved).
    """
    if not alphas and seeds is None:
        named = [dict(options)]
    else:
        named = run_options(dataset, defense, options, alphas or (None,), seeds)
    specs = []
    for own in named:
        fresh = config_for_run(dataset, defense, own, resume=False)
        saved = resume and (run_dir(fresh) / "last.pt").is_file()
        specs.append(TrainSpec(config_for_run(dataset, defense, own, resume=True) if saved else fresh, resume))
    return specs


def eval_specs(
    sources: Sequence[ModelSource], options: Mapping[str, Any], dataset: str | None, run: str | None,
    overwrite: bool, resume: bool,
) -> list[EvalSpec]:
    """One job per model (``evaluate --model-id A --model-id B``), each with the config
    ``evaluate`` would build for it (the model's default run name when several)."""
    if not sources:
        raise WmrbenchError(f"say which model to evaluate: {setting('checkpoint')}, {setting('model_id')} or {setting('model')}")
    if run is not None and len(sources) > 1:
        raise WmrbenchError(f"{setting('run')} names one result; with several models each result is named by its model")
    if resume and overwrite:
        raise WmrbenchError(f"{setting('resume', True)} continues an unfinished evaluation and {setting('overwrite', True)} "
                            "starts over: give one of them")
    specs = []
    for source in sources:
        _, cfg = plan(source, options, dataset, run)
        specs.append(EvalSpec(source, cfg, overwrite, resume and has_partial(result_dir(cfg))))
    return specs


def check_distinct(specs: Sequence[Spec]) -> None:
    """Two jobs of one sweep never write the same folder."""
    seen: dict[Path, str] = {}
    for spec in specs:
        folder = spec.folder.resolve()
        if folder in seen:
            raise WmrbenchError(f"runs {seen[folder]!r} and {spec.name!r} would write the same folder {spec.folder}: "
                                f"give each its own {setting('run')}")
        seen[folder] = spec.name
