"""``wmrbench demo``: the whole loop on the embedded digits data, in a few minutes on a CPU."""

from __future__ import annotations

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.core.checks import parse_enum
from wmrbench.core.config import Defense, parse_alphas
from wmrbench.core.presets import (
    DEFAULT_ALPHA_TEST,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DEFENSE,
    DEFAULT_DEVICE,
    DEFAULT_RESULTS_DIR,
    DEFAULT_SEED,
)


def demo(
    config: ConfigFile = None,
    defense: p.DemoDefense = DEFAULT_DEFENSE.value,
    alpha_train: p.DemoAlphaTrain = None,
    alpha_test: p.AlphaTestList = ",".join(f"{a:g}" for a in DEFAULT_ALPHA_TEST),
    checkpoint_dir: p.DemoCheckpointDir = DEFAULT_CHECKPOINT_DIR,
    results_dir: p.DemoResultsDir = DEFAULT_RESULTS_DIR,
    device: p.Device = DEFAULT_DEVICE,
    seed: p.TrainAttackSeed = DEFAULT_SEED,
    quiet: p.QuietDemo = False,
) -> None:
    """Train DEFENSE and DEFENSE+ours on digits, evaluate both, print the paper's table."""
    from wmrbench.studies.demo import run_demo
    from wmrbench.report import print_table, protocol_text, result_table

    with user_errors():
        chosen = parse_enum(Defense, defense, "defense")
        summaries = run_demo(
            chosen, alpha_train, parse_alphas(alpha_test), checkpoint_dir, results_dir, device,
            seed, show_progress=not quiet,
        )
    n = summaries[0].metrics.n_examples
    title = f"digits, {chosen.value.upper()} vs {chosen.value.upper()}+ours ({n} test images, {protocol_text(summaries[0].config)})"
    print_table(result_table(summaries), title)
    for summary in summaries:
        typer.echo(f"{summary.run}: checkpoint {summary.model.checkpoint}, results {summary.config.results_dir}/{summary.run}/")
    # One training run per model: a gain seen here may be the seed's (docs/reproduction.md: 5 seeds).
    typer.echo("One training run per model: each interval covers the test images only, not the training run's own "
               "randomness; for a claim about +ours train several seeds (train --seeds 0,1,2,3,4) and compare the groups.")
