"""``wmrbench reproduce table1``: the paper's Table 1 trained, evaluated and compared, resumable;
``wmrbench reproduce family``: the instance-reweighting family side by side."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wmrbench.cli import params as p
from wmrbench.cli.common import user_errors
from wmrbench.cli.launching import run_stages, settings_from
from wmrbench.presets import (
    DEFAULT_ALPHA_TEST,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DEVICE,
    DEFAULT_RESULTS_DIR,
    DEFAULT_SEED,
)

reproduce_app = typer.Typer(
    help="Reproduce the paper's tables with one command: train, evaluate, compare (resumable; rerun to continue).",
    no_args_is_help=True,
)


@reproduce_app.command("table1")
@p.command
def table1(
    quick: Annotated[bool, typer.Option("--quick", help="A CPU-sized stand-in on the embedded digits set (its small preset, a few minutes on a CPU): NOT the paper's setting, and not compared with the paper's MNIST numbers.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Training epochs of each run (default: the paper's 100; --quick: 30). Fewer epochs are marked as differing from the paper.")] = None,
    n_examples: Annotated[int | None, typer.Option(help="Evaluate on the first N test images (default: all, as the paper).")] = None,
    restarts: Annotated[int | None, typer.Option(help="Evaluation restarts (default: the paper's 10).")] = None,
    restart_from: Annotated[str, typer.Option(help="start (each restart afresh from x; default) | previous (chained from the previous end point, as the authors' evaluation loop).")] = "start",
    alpha_test: Annotated[str, typer.Option(help="Comma-separated alpha_test values (default: the paper's 1,1.5,2).")] = ",".join(f"{a:g}" for a in DEFAULT_ALPHA_TEST),
    seed: Annotated[int, typer.Option(help="Seed of training and of the attacks' starts.")] = DEFAULT_SEED,
    device: p.Device = DEFAULT_DEVICE,
    precision: Annotated[str, typer.Option(help="Training precision: fp32 (default, as the authors' code) | bf16 (faster on a GPU; not the paper's). Evaluation is always fp32.")] = "fp32",
    data_dir: Annotated[str | None, typer.Option(help="Folder holding MNIST (MNIST/raw/*-ubyte; default data). Not needed with --quick.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch MNIST into --data-dir first if it is missing (needs the internet).")] = False,
    checkpoint_dir: Annotated[str, typer.Option(help="The four runs go to CHECKPOINT_DIR/table1-DATASET-DEFENSE-aALPHA/.")] = DEFAULT_CHECKPOINT_DIR,
    results_dir: Annotated[str, typer.Option(help="Evaluations and table1.md / table1.csv go to RESULTS_DIR/table1-DATASET/.")] = DEFAULT_RESULTS_DIR,
    stop_after_epochs: Annotated[int | None, typer.Option(help="Stop this invocation after N epochs of training (a time-boxed job); rerun the same command to continue.")] = None,
    train_seeds: Annotated[int | None, typer.Option(help="Training seeds per model (default 3; --quick: 1): --seed, --seed + 1, ...; with several, rows are means over seeds and gains are tested over seeds.")] = None,
    stack: Annotated[str, typer.Option(help="on = train the four runs as ONE stacked model (one attack and one forward/backward per step, the same checkpoints); off (default) = taking turns, each bit for bit its solo run (docs/reproduction.md: stacking measured and owed).")] = "off",
    quiet: p.QuietBars = False,
    launching: Any = p.LAUNCHER,
    **given: Any,
) -> None:
    """Table 1 (MNIST): PGD, PGD+ours (alpha_train 0.5), TRADES, TRADES+ours (alpha_train 2), trained with the
    paper's settings, evaluated with the paper's protocol (10 restarts chosen among by the highest cross-entropy, as the
    authors' evaluation, fp32), beside the paper's numbers; the same attack run is also reported under wmrbench's
    weighted restart rule.

    Rerunning skips finished runs and finished evaluations, and resumes an interrupted run from its last epoch,
    here or on another machine with the folders copied over (give the same options).
    """
    from wmrbench.config import parse_alphas
    from wmrbench.presets import DEFAULT_DATA_DIR
    from wmrbench.report import print_table
    from wmrbench.launch.tables import table1_stage
    from wmrbench.reproduce import ReproduceConfig, reproduce_table1

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
    quick: Annotated[bool, typer.Option("--quick", help="A CPU-sized demonstration on the embedded digits set: 8 epochs, PGD and APGD-CE on 200 test images, AutoAttack on 100 (a few minutes per model on a CPU). NOT the paper's setting.")] = False,
    dataset: Annotated[str | None, typer.Option(help="Data set with presets for every defense: mnist (default) | cifar10 | digits (--quick's).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs of every run (default: each preset's; --quick: 8). The burn-in of GAIRAT and MAIL scales with it.")] = None,
    n_examples: Annotated[int | None, typer.Option(help="Evaluate on the first N test images (default: all; --quick: 200).")] = None,
    autoattack_n_examples: Annotated[int | None, typer.Option(help="AutoAttack on the first N test images (default: --n-examples; --quick: 100).")] = None,
    attacks: Annotated[str, typer.Option(help="Comma-separated evaluation attacks for A_rob, from pgd, apgd-ce, autoattack (pgd is required: A_sa, A_tr and A_wc come from it).")] = "pgd,apgd-ce,autoattack",
    alpha_test: Annotated[str, typer.Option(help="Comma-separated alpha_test values (default 1,1.5,2).")] = ",".join(f"{a:g}" for a in DEFAULT_ALPHA_TEST),
    seed: Annotated[int, typer.Option(help="Seed of training (weights, data order) and of the attacks' starts.")] = DEFAULT_SEED,
    device: p.Device = DEFAULT_DEVICE,
    precision: Annotated[str, typer.Option(help="Training precision: fp32 (default) | bf16. Evaluation is always fp32.")] = "fp32",
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data set (default data). Not needed with --quick.")] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet).")] = False,
    checkpoint_dir: Annotated[str, typer.Option(help="The seven runs go to CHECKPOINT_DIR/family-DATASET-DEFENSE-aALPHA/.")] = DEFAULT_CHECKPOINT_DIR,
    results_dir: Annotated[str, typer.Option(help="Evaluations and family.md / family.csv go to RESULTS_DIR/family-DATASET/.")] = DEFAULT_RESULTS_DIR,
    stop_after_epochs: Annotated[int | None, typer.Option(help="Stop this invocation after N epochs of training; rerun the same command to continue.")] = None,
    train_seeds: Annotated[int | None, typer.Option(help="Training seeds per model (default 3; --quick: 1): --seed, --seed + 1, ...; with several, rows are means over seeds with two-level intervals.")] = None,
    quiet: p.QuietBars = False,
    launching: Any = p.LAUNCHER,
    **given: Any,
) -> None:
    """The reweighting family side by side: PGD-AT, TRADES, MART, GAIRAT, MAIL-TRADES, PGD+ours and TRADES+ours,
    trained on the same data order and attack budget, each evaluated with PGD, APGD-CE and AutoAttack (A_rob) and
    A_sa, A_tr, A_wc at each alpha_test; one table, with each model's difference from its unweighted base.

    Rerunning skips finished runs and evaluations and resumes interrupted ones (give the same options).
    """
    from wmrbench.config import parse_alphas
    from wmrbench.family import FamilyConfig, reproduce_family
    from wmrbench.launch.tables import family_stage
    from wmrbench.presets import DEFAULT_DATA_DIR
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
    from wmrbench.errors import WmrbenchError, setting
    from wmrbench.launch import Launcher

    settings = settings_from(given)
    if settings.launcher is Launcher.INLINE:
        return True
    if stop_after_epochs is not None:
        raise WmrbenchError(f"{setting('stop_after_epochs')} is for runs in this process; with "
                            f"{setting('launcher', settings.launcher.value)} a job's time limit is {setting('time_min')}")
    return run_stages(next_stage, settings, command)
