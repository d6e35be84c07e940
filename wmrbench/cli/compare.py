"""``wmrbench compare A B``: a paired comparison of two results on the same test examples."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors


def compare(
    result_a: Annotated[str, typer.Argument(metavar="A", help="A result folder (RESULTS_DIR/RUN) that `wmrbench evaluate` wrote.")],
    result_b: Annotated[str, typer.Argument(metavar="B", help="Another result folder, on the same test examples.")],
    output: Annotated[str | None, typer.Option(help="Also write the table to this file: CSV for a .csv name (full precision, the interval as 'A - B_lo' / 'A - B_hi' columns), else Markdown; - prints the file's text instead (nothing else on stdout).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="md | csv for --output (default: from its suffix).")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (default 2000).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap's resampling (default 0): the same seed gives the same intervals.")] = 0,
) -> None:
    """Is A's number really different from B's? Per metric: A - B, its 95% paired-bootstrap
    interval (the same resampled examples for both) and p-value; for A_nat and A_rob also
    McNemar's exact test on the examples only one of them gets right.

    A and B can be two models, two attacks, two seeds, or a baseline and its +ours. Results on
    different test examples are refused. The interval covers the sampling of test examples, not
    the attacks' own randomness.
    """
    from wmrbench.comparison import STDOUT, CompareFormat, compare as run, display_rows, output_format, render, title
    from wmrbench.checks import parse_enum
    from wmrbench.io import write_stdout
    from wmrbench.report import print_table
    from wmrbench.uncertainty import BootstrapConfig

    with user_errors():
        chosen = parse_enum(CompareFormat, fmt, "format") if fmt is not None else None
        comparison, written = run(result_a, result_b, BootstrapConfig(resamples=resamples, seed=seed), output, chosen)
    for note in comparison.notes:
        typer.echo(f"Warning: {note}", err=True)
    if output is not None and output == STDOUT:  # standard output holds the file's text and nothing else
        with user_errors():
            write_stdout(render(comparison, output_format(output, chosen)))
        return
    import pandas as pd

    headers, rows = display_rows(comparison)
    print_table(pd.DataFrame(rows, columns=headers), title(comparison))
    if written is not None:
        typer.echo(f"wrote {written}")
