"""``wmrbench rerun``: replay a result's (or a checkpoint's) exact configuration into a new run."""

from __future__ import annotations

from pathlib import Path

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def rerun(
    config: ConfigFile = None,
    path: p.RerunPath = Path("summary.json"),
    run: p.RerunRun = None,
    quiet: p.QuietBars = False,
) -> None:
    """Run again what a result or checkpoint records and say whether the numbers match.

    A summary.json is evaluated again (same model, data, attack, seed, precision); a checkpoint is
    trained again from scratch for as many epochs as it holds, and its weights are compared.
    Exit code 1 when they differ.
    """
    from wmrbench.core.errors import WmrbenchError
    from wmrbench.evaluation import rerun_result
    from wmrbench.training import rerun_training

    with user_errors():
        if path.is_dir():
            raise WmrbenchError(f"{path} is a folder; give a result's summary.json or a training checkpoint (last.pt)")
        if path.suffix == ".json":
            redone = rerun_result(path, run, show_progress=not quiet)
            where, differences = redone.result.out_dir, redone.differences
        else:
            again = rerun_training(path, run, show_progress=not quiet)
            where, differences = again.result.checkpoint, again.differences
    typer.echo(f"rerun: {where}")
    if differences:
        typer.echo(f"differs from {path}: " + "; ".join(differences))
        raise typer.Exit(1)
    typer.echo(f"same as {path}: every metric and record" if path.suffix == ".json" else f"same as {path}: every weight")
