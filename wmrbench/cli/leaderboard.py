"""``wmrbench leaderboard``: every result under a folder, in the paper's tables."""

from __future__ import annotations

import textwrap

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def leaderboard(
    config: ConfigFile = None,
    results_dir: p.SummariesDir = "results",
    fmt: p.BoardFormat = "md",
    table: p.BoardTable = "all",
    sort_by: p.SortBy = None,
    compare_paper: p.ComparePaper = False,
    output: p.BoardOutput = None,
    ci: p.Ci = "pm",
) -> None:
    """Gather every summary.json into the paper's tables; print them and write them."""
    from wmrbench.core.checks import parse_enum
    from wmrbench.core.io import write_stdout
    from wmrbench.report import TITLES, CiStyle, TableFormat, TableKind, print_table, terminal_view
    from wmrbench.report import leaderboard as build

    with user_errors():
        style = parse_enum(CiStyle, ci, "ci")
        board = build(results_dir, parse_enum(TableFormat, fmt, "format"), parse_enum(TableKind, table, "table"),
                      sort_by, compare_paper, output, style)
    for warning in board.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if board.text is not None:  # --output -: standard output holds the file's text and nothing else
        for line in board.few_examples:
            typer.echo(f"Warning: {line}", err=True)
        with user_errors():
            write_stdout(board.text if board.text.endswith("\n") else board.text + "\n")
        return
    for kind, frame in board.tables.items():
        shown, same = terminal_view(frame)  # the files keep every protocol column
        print_table(shown, f"{TITLES[kind]}; {same}" if same else TITLES[kind], ci=style)
    # Part of the report, beside the tables (stdout): which numbers rest on too few examples;
    # one warning, wrapped to the tables' width.
    for line in board.few_examples:
        typer.echo(textwrap.fill(f"Warning: {line}", width=120, subsequent_indent="  ", break_on_hyphens=False))
    for path in board.files:
        typer.echo(f"wrote {path}")
