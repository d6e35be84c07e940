"""``wmrbench demo``: the whole loop on the embedded digits data, in a few minutes on a CPU."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli.common import user_errors
from wmrbench.config import Defense, parse_alphas, parse_enum


def demo(
    defense: Annotated[str, typer.Option(help="pgd | trades: the defense trained with and without the weighted risk.")] = "trades",
    alpha_train: Annotated[float | None, typer.Option(help="alpha_train of '+ours' (default: the preset's).")] = None,
    alpha_test: Annotated[str, typer.Option(help="Comma-separated alpha_test values.")] = "1,1.5,2",
    checkpoint_dir: Annotated[str, typer.Option(help="Where the two runs' checkpoints go.")] = "checkpoints",
    results_dir: Annotated[str, typer.Option(help="Where the two results go.")] = "results",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of training and of the attacks' starts.")] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train DEFENSE and DEFENSE+ours on digits, evaluate both, print the paper's table."""
    from wmrbench.demo import run_demo
    from wmrbench.report import non_uniform_table, print_table

    with user_errors():
        chosen = parse_enum(Defense, defense, "defense")
        summaries = run_demo(
            chosen, alpha_train, parse_alphas(alpha_test), checkpoint_dir, results_dir, device,
            seed, show_progress=not quiet,
        )
    n = summaries[0]["metrics"]["n_examples"]
    print_table(non_uniform_table(summaries), f"digits, {chosen.value.upper()} vs {chosen.value.upper()}+ours ({n} test images)")
