"""``wmrbench compare A B``: a paired comparison of two results on the same test examples."""

from __future__ import annotations

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors


def compare(
    result_a: p.CompareA,
    result_b: p.CompareB,
    output: p.CompareOutput = None,
    fmt: p.CompareFormat = None,
    resamples: p.Resamples = 2000,
    seed: p.BootstrapSeed = 0,
) -> None:
    """A paired comparison of two results or groups: A - B, its 95% interval, a verdict.

    Two results: the paired bootstrap over the test examples they share, and McNemar's exact test
    for A_nat and A_rob; the interval covers the test examples only, not training randomness.
    Two groups of runs (training seeds, or `evaluate --seeds`): the difference of their means with
    a two-level interval, a t test over runs and each side's sd over runs (docs/cli.md).
    """
    from wmrbench.core.checks import parse_enum
    from wmrbench.results.comparison import STDOUT, CompareFormat, output_format
    from wmrbench.core.io import write_stdout
    from wmrbench.report import print_table
    from wmrbench.results.uncertainty import BootstrapConfig

    with user_errors():
        from wmrbench.results import comparison, groups

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
