"""``wmrbench evaluate``: A_nat, A_rob, and A_sa / A_tr for each alpha_test."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import EXIT_USAGE, user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.cli.launching import report, settings_from
from wmrbench.launch.settings import Launcher, LaunchSettings


@p.command
def evaluate(
    config: ConfigFile = None,
    model_id: p.EvalModelIds = None,
    model_source: Any = p.MODEL_SOURCE,
    data: Any = p.DATA,
    n_examples: p.NExamples = None,
    run: p.EvalRun = None,
    defense: p.EvalDefense = None,
    alpha_train: p.EvalAlphaTrain = None,
    adversarial: p.Adversarial = None,
    budget: Any = p.BUDGET,
    attack_method: Any = p.ATTACK_METHOD,
    alpha_test: p.EvalAlphaTest = None,
    restarting: Any = p.RESTARTS,
    seed: p.Seed = None,
    seeds: p.Seeds = None,
    results_dir: p.ResultsDir = None,
    overwrite: p.Overwrite = False,
    resume: p.EvalResume = False,
    keep_examples: p.KeepExamples = None,
    ci: p.Ci = "pm",
    quiet: p.Quiet = False,
    runtime: Any = p.RUNTIME_GROUP,
    compile: p.Compile = None,
    launching: Any = p.LAUNCHER,
    **given: Any,
) -> None:
    """Evaluate a model under uniform (A_rob) and non-uniform (A_sa, A_tr) attacks.

    The model is a wmrbench checkpoint, a RobustBench zoo id (several in turn), your own
    MODULE:FUNCTION, or the points a previous `wmrbench attack` saved (--adversarial).
    Each finished batch is saved until the result is written: a killed run goes on with --resume.
    Under torchrun the examples are split over the processes; the result is the same.
    With --launcher local or slurm each model is a job of its own (docs/cluster.md).
    """
    from wmrbench.core import distributed
    from wmrbench.evaluation import evaluate_models
    from wmrbench.core.checks import parse_enum
    from wmrbench.report import CiStyle, print_table, protocol_text, result_table, seed_spread_table
    from wmrbench.results.uncertainty import few_examples_warnings

    with user_errors():
        launch = settings_from(given)
    if launch.launcher is not Launcher.INLINE:
        _evaluate_as_jobs(launch, {**locals(), **given})
        return
    with user_errors(), distributed.session():
        style = parse_enum(CiStyle, ci, "ci")
        options = o.options_from(o.EVAL_SETTINGS, {**locals(), **given})
        o.note_precision(options.get("precision"))
        sources = o.sources_of(given, model_id, defense, alpha_train)
        results, failures = evaluate_models(sources, options, given["dataset"], run, adversarial, show_progress=not quiet,
                                             overwrite=overwrite, resume=resume, keep_examples=keep_examples)
    if not distributed.is_main_process():
        return
    for result in results:
        summary = result.summary
        print_table(result_table([summary]), f"{summary.run}: {summary.metrics.n_examples} examples, {protocol_text(summary.config)}",
                    ci=style)
        if summary.uncertainty is not None:
            for line in few_examples_warnings(summary.uncertainty):
                typer.echo(f"Warning: {line}", err=True)
        spread = seed_spread_table(summary)
        if spread is not None:
            seeds = ", ".join(map(str, summary.seed_spread.seeds))
            print_table(spread, f"{summary.run}: the attack repeated with seeds {seeds} (its own randomness, which an "
                                f"interval over examples does not cover); the table above is seed {summary.config.seed}'s")
        typer.echo(f"results: {result.out_dir}")
    if failures:
        for failure in failures:
            typer.echo(f"Error: {failure.name}: {failure.message}", err=True)
        typer.echo(f"{len(failures)} of {len(sources)} models failed; the others' results are written", err=True)
        raise typer.Exit(EXIT_USAGE)


def _evaluate_as_jobs(launch: LaunchSettings, given: dict[str, Any]) -> None:
    """One job per model: the config ``evaluate`` would build for it, evaluated by a local process
    or a SLURM job, into RESULTS_DIR/RUN/ as inline."""
    from wmrbench.core import distributed
    from wmrbench.core.errors import WmrbenchError, setting
    from wmrbench.core.checks import parse_enum
    from wmrbench.launch import eval_specs
    from wmrbench.launch import launch as run_jobs
    from wmrbench.report import CiStyle

    with user_errors():
        if distributed.env_world_size() > 1:
            raise WmrbenchError(f"{setting('launcher', launch.launcher.value)} submits jobs: run it without torchrun")
        if given["adversarial"] is not None or given["seeds"] is not None:
            which = "adversarial" if given["adversarial"] is not None else "seeds"
            raise WmrbenchError(f"{setting(which)} is not for {setting('launcher', launch.launcher.value)}: run it inline")
        style = parse_enum(CiStyle, given["ci"], "ci")
        options = o.options_from(o.EVAL_SETTINGS, given)
        o.note_precision(options.get("precision"))
        sources = o.sources_of(given, given["model_id"], given["defense"], given["alpha_train"])
        specs = eval_specs(sources, options, given["dataset"], given["run"], given["overwrite"], given["resume"])
        launched = run_jobs(specs, launch, resume=given["resume"], show_progress=False)
    from pathlib import Path

    from wmrbench.results.records import SUMMARY_NAME, read_summary
    from wmrbench.report import print_table, protocol_text, result_table

    for outcome in launched.outcomes:  # local: each model's table, as inline prints it
        if outcome.error is None and outcome.path is not None:
            summary = read_summary(Path(outcome.path) / SUMMARY_NAME)
            print_table(result_table([summary]), f"{summary.run}: {summary.metrics.n_examples} examples, "
                        f"{protocol_text(summary.config)}", ci=style)
    if report(launched, "wmrbench evaluate ... --resume", "results:"):
        raise typer.Exit(EXIT_USAGE)
