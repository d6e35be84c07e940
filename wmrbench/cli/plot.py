"""``wmrbench plot``: metrics against alpha_test, and the attacker's weights of each result."""

from __future__ import annotations

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def plot(
    config: ConfigFile = None,
    results_dir: p.SummariesDir = "results",
    output_dir: p.PlotOutputDir = None,
    run: p.PlotRuns = None,
) -> None:
    """Plot A_rob, A_sa and A_tr against alpha_test (a line per model) and the weights."""
    from wmrbench.report import make_plots

    with user_errors():
        plots = make_plots(results_dir, output_dir, run)
    for warning in plots.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    for path in plots.files:
        typer.echo(f"wrote {path}")
