"""``wmrbench plot``: metrics against alpha_test, and the attacker's weights of each result."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def plot(
    config: ConfigFile = None,
    results_dir: Annotated[str, typer.Argument(help="Folder searched (recursively) for summary.json files (default results).", show_default=False)] = "results",
    output_dir: Annotated[str | None, typer.Option(help="Where the PNG and SVG files go (default RESULTS_DIR/plots).", rich_help_panel=p.OUTPUT)] = None,
    run: Annotated[list[str] | None, typer.Option(help="Draw the weights histogram for this result only (repeatable; default: every result).", rich_help_panel=p.OUTPUT)] = None,
) -> None:
    """Plot A_rob, A_sa and A_tr against alpha_test (a line per model) and the weights."""
    from wmrbench.report import make_plots

    with user_errors():
        plots = make_plots(results_dir, output_dir, run)
    for warning in plots.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    for path in plots.files:
        typer.echo(f"wrote {path}")
