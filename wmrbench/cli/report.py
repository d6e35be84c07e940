"""``wmrbench report``: every result under one or more folders as one offline HTML page."""

from __future__ import annotations

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def report(
    config: ConfigFile = None,
    results_dirs: p.ReportDirs = None,
    output: p.ReportOutput = "report.html",
    examples: p.ReportExamples = 16,
    title: p.ReportTitle = "wmrbench report",
    quiet: p.QuietBars = False,
) -> None:
    """Write every result into one self-contained HTML page that opens offline.

    The leaderboard (sortable, filterable, ties with the leader marked), the A_sa / A_tr curves,
    and a page per result with its audit, paired comparisons and the examples that decide A_sa.
    No network is needed to open it: no CDN, no external font or script.
    """
    from wmrbench.report.html import ReportConfig, build_report

    with user_errors():
        built = build_report(ReportConfig(tuple(results_dirs or ("results",)), output, examples, title, not quiet))
    for warning in built.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    typer.echo(f"wrote {built.path} ({built.results} results, {built.bytes / 1e6:.2f} MB)")
