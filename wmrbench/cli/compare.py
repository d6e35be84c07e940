"""``wmrbench compare A B``: a paired comparison of two results on the same test examples."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors


def compare(
    result_a: Annotated[str, typer.Argument(metavar="A", help="A result folder (RESULTS_DIR/RUN) that `wmrbench evaluate` wrote, or a group of runs of one method: a quoted glob ('results/x-a2-s*') or comma-separated folders.")],
    result_b: Annotated[str, typer.Argument(metavar="B", help="Another result folder or group, on the same test examples.")],
    output: Annotated[str | None, typer.Option(help="Also write the table to this file: CSV for a .csv name (full precision, the interval as 'A - B_lo' / 'A - B_hi' columns), else Markdown; - prints the file's text instead (nothing else on stdout).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="md | csv for --output (default: from its suffix).")] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (default 2000).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap's resampling (default 0): the same seed gives the same intervals.")] = 0,
) -> None:
    """Is A's number really different from B's? Per metric: A - B, its 95% interval, a p-value and a verdict.

    One result each: the paired bootstrap over test examples (the same resampled examples for
    both), and for A_nat and A_rob McNemar's exact test. That interval covers the test examples
    only, not the training run's own randomness, and the verdict says so.

    Groups of runs (training seeds, or the attack seeds of `evaluate --seeds`): the difference of
    the groups' means, its two-level interval (runs resampled, then the shared examples), a t test
    over runs (paired when the seeds pair up), the probability that a run of A beats a run of B,
    and each side's sd over runs. A group whose runs differ in a setting other than the seed, or
    results on different test examples, are refused.
    """
    from wmrbench.checks import parse_enum
    from wmrbench.comparison import STDOUT, CompareFormat, output_format
    from wmrbench.io import write_stdout
    from wmrbench.report import print_table
    from wmrbench.uncertainty import BootstrapConfig

    with user_errors():
        from wmrbench import comparison, groups

        chosen = parse_enum(CompareFormat, fmt, "format") if fmt is not None else None
        config = BootstrapConfig(resamples=resamples, seed=seed)
        fmt_out = output_format(output, chosen) if output is not None else None
        if groups.is_single_run(result_a) and groups.is_single_run(result_b):
            single, written = comparison.compare(groups.expand(result_a)[0], groups.expand(result_b)[0], config, output, chosen)
            headers, rows = comparison.display_rows(single)
            title, notes = comparison.title(single), single.notes
            text = comparison.render(single, fmt_out) if output == STDOUT else None
        else:
            grouped, written = groups.compare_group_folders(result_a, result_b, config, output, chosen)
            headers, rows = groups.display_rows(grouped)
            title, notes = groups.comparison_title(grouped), ()
            text = groups.render_groups(grouped, fmt_out) if output == STDOUT else None
    for note in notes:
        typer.echo(f"Warning: {note}", err=True)
    if text is not None:  # standard output holds the file's text and nothing else
        with user_errors():
            write_stdout(text)
        return
    import pandas as pd

    print_table(pd.DataFrame(rows, columns=headers), title)
    if written is not None:
        typer.echo(f"wrote {written}")
