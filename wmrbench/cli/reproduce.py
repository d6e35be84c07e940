"""``wmrbench reproduce table1``: the paper's Table 1 trained, evaluated and compared, resumable;
``wmrbench reproduce family``: the instance-reweighting family side by side."""

from __future__ import annotations

from typing import Any

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.launching import run_stages, settings_from
from wmrbench.core.presets import (
    DEFAULT_ALPHA_TEST,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DEVICE,
    DEFAULT_RESULTS_DIR,
    DEFAULT_SEED,
)

reproduce_app = typer.Typer(
    help="Reproduce the paper's tables in one resumable command: train, evaluate, compare.",
    no_args_is_help=True,
)


@reproduce_app.command("table1")
@p.command
def table1(
    quick: p.Table1Quick = False,
    epochs: p.ReproEpochs = None,
    n_examples: p.ReproNExamples = None,
    train_seeds: p.ReproTrainSeeds = None,
    data_dir: p.ReproDataDir = None,
    download: p.ReproDownload = False,
    restarts: p.ReproRestarts = None,
    restart_from: p.ReproRestartFrom = "start",
    alpha_test: p.AlphaTestList = ",".join(f"{a:g}" for a in DEFAULT_ALPHA_TEST),
    seed: p.TrainAttackSeed = DEFAULT_SEED,
    checkpoint_dir: p.ReproCheckpointDir = DEFAULT_CHECKPOINT_DIR,
    results_dir: p.ReproResultsDir = DEFAULT_RESULTS_DIR,
    stop_after_epochs: p.ReproStopAfterEpochs = None,
    quiet: p.QuietBars = False,
    device: p.Device = DEFAULT_DEVICE,
    precision: p.ReproPrecision = "fp32",
    stack: p.ReproStack = "off",
    launching: Any = p.LAUNCHER,
    **given: Any,
) -> None:
    """Table 1 (MNIST): PGD and TRADES with and without the weighted risk, as the paper.

    Trained with the paper's settings (PGD+ours: alpha_train 0.5, TRADES+ours: 2), evaluated with its
    protocol (10 restarts, the highest cross-entropy kept, fp32) and shown beside its numbers; the
    same attack run is also reported under wmrbench's weighted restart rule.

    Rerunning skips finished runs and evaluations and resumes an interrupted run from its last
    epoch, here or on another machine with the folders copied over (give the same options).
    """
    from wmrbench.core.config import parse_alphas
    from wmrbench.core.presets import DEFAULT_DATA_DIR
    from wmrbench.report import print_table
    from wmrbench.launch.tables import table1_stage
    from wmrbench.studies.reproduce import ReproduceConfig, reproduce_table1

    with user_errors():
        cfg = ReproduceConfig(
            quick=quick, epochs=epochs, n_examples=n_examples, restarts=restarts, restart_from=restart_from,
            alpha_test=parse_alphas(alpha_test), seed=seed, device=device, precision=precision,
            data_dir=DEFAULT_DATA_DIR if data_dir is None else data_dir, download=download, checkpoint_dir=checkpoint_dir,
            results_dir=results_dir, stop_after_epochs=stop_after_epochs, stack=stack, train_seeds=train_seeds,
        )
        if not _through_launcher(given, lambda: table1_stage(cfg), "wmrbench reproduce table1 ...", stop_after_epochs):
            return
        outcome = reproduce_table1(cfg, log=typer.echo, show_progress=not quiet)
    if outcome.reproduction is None:
        return
    print_table(outcome.reproduction.comparison, outcome.reproduction.title)
    for line in outcome.reproduction.claims.lines():
        typer.echo(line)
    if outcome.reproduction.weighted_rule is not None:
        print_table(outcome.reproduction.weighted_rule,
                    "The same attack run under wmrbench's restart rule (weighted; the table above chooses as the paper: max-ce)")
    for path in outcome.files:
        typer.echo(f"wrote {path}")


@reproduce_app.command("family")
@p.command
def family(
    quick: p.FamilyQuick = False,
    dataset: p.FamilyDataset = None,
    epochs: p.ReproEpochs = None,
    n_examples: p.ReproNExamples = None,
    train_seeds: p.ReproTrainSeeds = None,
    data_dir: p.ReproDataDir = None,
    download: p.ReproDownload = False,
    attacks: p.FamilyAttacks = "pgd,apgd-ce,autoattack",
    autoattack_n_examples: p.AutoattackNExamples = None,
    alpha_test: p.AlphaTestList = ",".join(f"{a:g}" for a in DEFAULT_ALPHA_TEST),
    seed: p.TrainAttackSeed = DEFAULT_SEED,
    checkpoint_dir: p.ReproCheckpointDir = DEFAULT_CHECKPOINT_DIR,
    results_dir: p.ReproResultsDir = DEFAULT_RESULTS_DIR,
    stop_after_epochs: p.ReproStopAfterEpochs = None,
    quiet: p.QuietBars = False,
    device: p.Device = DEFAULT_DEVICE,
    precision: p.ReproPrecision = "fp32",
    launching: Any = p.LAUNCHER,
    **given: Any,
) -> None:
    """The reweighting family side by side: PGD-AT, TRADES, MART, GAIRAT, MAIL-TRADES, +ours.

    The seven models train on the same data order and attack budget; each is evaluated with PGD,
    APGD-CE and AutoAttack (A_rob) and A_sa, A_tr, A_wc at each alpha_test: one table, with each
    model's difference from its unweighted base.

    Rerunning skips finished runs and evaluations and resumes interrupted ones (same options).
    """
    from wmrbench.core.config import parse_alphas
    from wmrbench.studies.family import FamilyConfig, reproduce_family
    from wmrbench.launch.tables import family_stage
    from wmrbench.core.presets import DEFAULT_DATA_DIR
    from wmrbench.report import print_table

    with user_errors():
        cfg = FamilyConfig(
            quick=quick, dataset=dataset, epochs=epochs, n_examples=n_examples,
            autoattack_n_examples=autoattack_n_examples, attacks=tuple(a.strip() for a in attacks.split(",") if a.strip()),
            alpha_test=parse_alphas(alpha_test), seed=seed, device=device, precision=precision,
            data_dir=DEFAULT_DATA_DIR if data_dir is None else data_dir, download=download, checkpoint_dir=checkpoint_dir,
            results_dir=results_dir, stop_after_epochs=stop_after_epochs, train_seeds=train_seeds,
        )
        if not _through_launcher(given, lambda: family_stage(cfg), "wmrbench reproduce family ...", stop_after_epochs):
            return
        outcome = reproduce_family(cfg, log=typer.echo, show_progress=not quiet)
    if outcome.table is None:
        return
    print_table(outcome.table, "The reweighting family")
    print_table(outcome.gains, "Differences from the unweighted base (points; paired intervals owed)")
    for note in outcome.notes:
        typer.echo(f"- {note}")
    for path in outcome.files:
        typer.echo(f"wrote {path}")


def _through_launcher(given: dict[str, Any], next_stage: Any, command: str, stop_after_epochs: int | None) -> bool:
    """With --launcher local|slurm: launch the next stage's runs as jobs; True when the table
    is all that is left (written here, inline), False when jobs were submitted. Inline: True."""
    from wmrbench.core.errors import WmrbenchError, setting
    from wmrbench.launch import Launcher

    settings = settings_from(given)
    if settings.launcher is Launcher.INLINE:
        return True
    if stop_after_epochs is not None:
        raise WmrbenchError(f"{setting('stop_after_epochs')} is for runs in this process; with "
                            f"{setting('launcher', settings.launcher.value)} a job's time limit is {setting('time_min')}")
    return run_stages(next_stage, settings, command)
