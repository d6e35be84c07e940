"""What train, evaluate and reproduce share for ``--launcher``: the settings from the options,
and the lines that say what was launched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import typer

from wmrbench.cli.common import EXIT_USAGE

from wmrbench.cli.options import flag_text
from wmrbench.core.errors import render_settings, rendering_settings
from wmrbench.launch import Launched, Launcher, LaunchSettings
from wmrbench.launch.settings import launch_settings
from wmrbench.launch.tables import Stage

LAUNCHER_OPTIONS = ("launcher", "launcher_dir", "partition", "time_min", "gpus_per_job", "cpus_per_job",
                    "array_parallelism", "account", "sbatch", "max_timeouts")


def settings_from(given: Mapping[str, Any]) -> LaunchSettings:
    values = {name: given.get(name) for name in LAUNCHER_OPTIONS}
    values["folder"] = values.pop("launcher_dir")
    return launch_settings(**values)


def report(launched: Launched, command: str, result_label: str) -> int:
    """Print what was launched (and, inline or local, each run's result); the number of failed runs."""
    for spec in launched.finished:
        typer.echo(f"{spec.name}: finished already, {result_label} {spec.folder}")
    if launched.launcher is Launcher.SLURM and launched.jobs:
        typer.echo(f"submitted {len(launched.jobs)} job(s) to SLURM: "
                   + ", ".join(f"{job.job_id} ({spec.name})" for job, spec in zip(launched.jobs, launched.submitted)))
        typer.echo(f"their state: {launched.state_command}")
        typer.echo(f"once they have ended, the same command with --resume collects the finished runs and "
                   f"resubmits the others ({command})")
        return 0
    if launched.launcher is Launcher.LOCAL and launched.jobs:
        typer.echo("ran as local processes: " + ", ".join(launched.job_ids))
    if not launched.submitted:
        typer.echo("every run has finished; nothing to submit")
    failed = 0
    for outcome in launched.outcomes:
        if outcome.error is None:
            typer.echo(f"{result_label} {outcome.path}")
        else:
            failed += 1
            with rendering_settings(flag_text):
                typer.echo(f"Error: {outcome.name}: {render_settings(outcome.error)}", err=True)
    return failed


def run_stages(next_stage: Callable[[], Stage], settings: LaunchSettings, command: str) -> bool:
    """A reproduction through the launcher: launch what its next stage lacks (trainings, then
    evaluations); local goes on to the next stage, slurm returns after submitting. True once
    only the table is left (the caller writes it), False when jobs were submitted or failed."""
    from wmrbench.launch import launch

    while True:
        stage = next_stage()
        if not stage.specs:
            return True
        typer.echo(f"{stage.name}: {len(stage.specs)} run(s) as jobs: " + ", ".join(s.name for s in stage.specs))
        launched = launch(list(stage.specs), settings, resume=True, show_progress=False)
        label = "checkpoint:" if stage.name == "train" else "results:"
        if report(launched, command, label):
            raise typer.Exit(EXIT_USAGE)
        if settings.launcher is Launcher.SLURM:
            typer.echo("run the same command again once they have ended: it goes on with the next stage")
            return False
