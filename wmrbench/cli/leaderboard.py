"""``wmrbench leaderboard``: every result under a folder, in the paper's tables."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile


def leaderboard(
    config: ConfigFile = None,
    results_dir: Annotated[str, typer.Argument(help="Folder searched (recursively) for summary.json files.")] = "results",
    fmt: Annotated[str, typer.Option("--format", help="md (Markdown) | csv | latex (booktabs) | robustbench (one RobustBench model_info JSON per result, in RESULTS_DIR/robustbench/<dataset>/<Linf|L2>/, or under --output).")] = "md",
    table: Annotated[str, typer.Option(help="all | non-uniform (Tables 1-3) | uniform (Tables 4-5).")] = "all",
    sort_by: Annotated[str | None, typer.Option(help="Sort rows by this column, e.g. A_tr (accuracies best first).")] = None,
    compare_paper: Annotated[bool, typer.Option(help="Put the paper's numbers beside ours where data set, defense and alpha match.")] = False,
    output: Annotated[str | None, typer.Option(help="Write the table(s) to this one file (default: RESULTS_DIR/leaderboard-<table>.<ext>); - prints the file's text to standard output instead (nothing else goes there). A path that exists and is not a regular file (a device, a FIFO, a folder) is refused.")] = None,
) -> None:
    """Gather every summary.json into the paper's tables; print them and write them atomically."""
    from wmrbench.config import parse_enum
    from wmrbench.io import write_stdout
    from wmrbench.report import TITLES, TableFormat, TableKind, print_table
    from wmrbench.report import leaderboard as build

    with user_errors():
        board = build(results_dir, parse_enum(TableFormat, fmt, "format"), parse_enum(TableKind, table, "table"),
                      sort_by, compare_paper, output)
    for warning in board.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    if board.text is not None:  # --output -: standard output holds the file's text and nothing else
        with user_errors():
            write_stdout(board.text if board.text.endswith("\n") else board.text + "\n")
        return
    for kind, frame in board.tables.items():
        print_table(frame, TITLES[kind])
    for path in board.files:
        typer.echo(f"wrote {path}")
