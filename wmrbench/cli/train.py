"""``wmrbench train``: adversarial training with a defense from the registry (PGD-AT or TRADES,
"+ours" when alpha > 0; MART, GAIRAT, MAIL-AT, MAIL-TRADES)."""

from __future__ import annotations

from typing import Annotated

import typer

from wmrbench.cli import options as o
from wmrbench.cli.common import EXIT_USAGE, user_errors
from wmrbench.cli.config_file import ConfigFile

PRESET = "default: the paper's preset for the dataset"


def train(
    config: ConfigFile = None,
    dataset: Annotated[str | None, typer.Option(help="digits | mnist | cifar10 | cifar100 | tinyimagenet (default digits).")] = None,
    defense: Annotated[str | None, typer.Option(help="pgd (Madry PGD-AT) | trades (default) | mart | gairat | mail-at | mail-trades: the training loss and its attack, from the defense registry (docs/definitions.md). alpha_train ('+ours') applies to pgd and trades only.")] = None,
    alpha_train: Annotated[str | None, typer.Option(help="Weight sharpness alpha; 0 = unweighted baseline (default), > 0 = '+ours'. Several, comma-separated (0,0.5,2), train one run per value side by side in this process, on the same data order: runs RUN-a0, RUN-a0.5, ... (default names DATASET-DEFENSE-aALPHA), each with its own checkpoint folder.")] = None,
    beta: Annotated[float | None, typer.Option(help=f"beta of the KL term: TRADES' 1/lambda, MART's and MAIL-TRADES' beta ({PRESET}).")] = None,
    burn_in: Annotated[int | None, typer.Option(help=f"GAIRAT, MAIL: epochs of the unweighted base loss (PGD-AT or TRADES) before the reweighting starts ({PRESET}, e.g. GAIRAT 59 and MAIL 60 on MNIST).")] = None,
    gair_lambda: Annotated[float | None, typer.Option(help=f"GAIRAT's lambda in the weight (1 + tanh(lambda + 5 (1 - 2 kappa / K))) / 2 ({PRESET}: -1, the authors').")] = None,
    mail_bias: Annotated[float | None, typer.Option(help=f"MAIL's bias in the weight 3 * sigmoid(slope * (PM + bias)), PM = -margin ({PRESET}: -1.5, the authors').")] = None,
    mail_slope: Annotated[float | None, typer.Option(help=f"MAIL's slope (> 0) in that weight ({PRESET}: 1, the authors').")] = None,
    detach_weights: Annotated[bool | None, typer.Option("--detach-weights/--no-detach-weights", help="Detach s_i from the graph (default: no, as in the authors' code).")] = None,
    normalize_weights: Annotated[bool | None, typer.Option("--normalize-weights/--no-normalize-weights", help="Divide the weighted loss by sum s_i (detached) instead of m (default: no).")] = None,
    arch: Annotated[str | None, typer.Option(help=f"Architecture from the registry ({PRESET}).")] = None,
    eps: Annotated[float | None, typer.Option(help=f"L-inf radius of the training attack ({PRESET}).")] = None,
    step_size: Annotated[float | None, typer.Option(help=f"Training attack step size ({PRESET}).")] = None,
    steps: Annotated[int | None, typer.Option(help=f"Training attack steps ({PRESET}).")] = None,
    restarts: Annotated[int | None, typer.Option(help="Training attack restarts (default 1).")] = None,
    start: Annotated[str | None, typer.Option(help="Attack start: normal (0.001*N(0,I), Algorithm 1; default) | uniform (U(-eps, eps), as the authors' PGD-AT code) | zero.")] = None,
    epochs: Annotated[int | None, typer.Option(help=f"Epochs ({PRESET}).")] = None,
    batch_size: Annotated[int | None, typer.Option(help=f"Global mini-batch size, split evenly over torchrun's processes ({PRESET}).")] = None,
    lr: Annotated[float | None, typer.Option(help=f"SGD learning rate ({PRESET}).")] = None,
    momentum: Annotated[float | None, typer.Option(help=f"SGD momentum ({PRESET}).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help=f"Weight decay ({PRESET}).")] = None,
    milestones: Annotated[str | None, typer.Option(help=f"Epochs where lr is multiplied by gamma, e.g. 75,90 ({PRESET}).")] = None,
    gamma: Annotated[float | None, typer.Option(help=f"lr factor at each milestone ({PRESET}).")] = None,
    augment: Annotated[bool | None, typer.Option(help=f"Random crop (padding 4) and flip ({PRESET}).")] = None,
    attack_mode: Annotated[str | None, typer.Option(help="eval (Algorithm 1; default) | train: the model's mode while the training attack runs (the authors' PGD-AT code attacks in train mode).")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Evaluate on the held-out split every N epochs (and after the last); keeps best.pt beside last.pt (default 0: never).")] = None,
    val_size: Annotated[int | None, typer.Option(help="Examples held out from the TRAINING split (chosen with --seed) for --eval-every; never the test set.")] = None,
    select_by: Annotated[str | None, typer.Option(help="What best.pt maximizes: A_rob (default) | A_sa@ALPHA | A_tr@ALPHA, e.g. A_tr@2.")] = None,
    tensorboard: Annotated[str | None, typer.Option(help="Write each epoch's scalars (loss, attack accuracy, mean weight, lr, held-out metrics) and the importance weights' histogram here; open with `tensorboard --logdir DIR` (needs the tensorboard extra).")] = None,
    padding_mode: Annotated[str | None, typer.Option(help=f"zeros | reflect: how the random crop pads ({PRESET}: reflect for CIFAR-10 PGD-AT, as the authors' code).")] = None,
    n_train: Annotated[int | None, typer.Option(help="A first try on a subset: train on the first N training examples (those not held out by --val-size; default: all). Not the paper's setting.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="A first try: end each epoch after N mini-batches (default: every batch). Not the paper's setting.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for weights, shuffling and attack starts (default 0).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder holding the data set files (default data).")] = None,
    checkpoint_dir: Annotated[str | None, typer.Option(help="Checkpoints go to CHECKPOINT_DIR/RUN/last.pt (default checkpoints).")] = None,
    run: Annotated[str | None, o.run_option(help="Run name (default: DATASET-DEFENSE-aALPHA).")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N (default auto).")] = None,
    precision: Annotated[str | None, typer.Option(help="bf16 | fp32 (default: bf16 on CUDA, fp32 on CPU).")] = None,
    log_every: Annotated[int | None, typer.Option(help="Read the running loss back once per this many steps (default 20).")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model for the training forward passes; the attack runs it uncompiled (default: no).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Fetch the data set into --data-dir first if it is missing (needs the internet; cifar10 via torchvision, tinyimagenet, mnist).")] = False,
    verify_checksums: Annotated[bool | None, typer.Option("--verify-checksums/--no-verify-checksums", help="Check the CIFAR-10 files against torchvision's published MD5s (default: yes; the other data sets have no per-file checksums).")] = None,
    divergence_stop: Annotated[bool | None, typer.Option("--divergence-stop/--no-divergence-stop", help="Stop a run whose loss explodes while staying finite: an epoch's mean loss over 10 x ln(classes) x exp(alpha_train) x (1 + beta for TRADES), or training attack accuracy back at chance after it was clearly above (docs/reliability.md); the last good checkpoint is kept. --no-divergence-stop only warns and trains on (default: stop). NaN or inf always stops.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue RUN exactly from its last.pt.")] = False,
    stop_after_epochs: Annotated[int | None, typer.Option(help="Stop this invocation after N epochs (resume later).")] = None,
    stack: Annotated[str, typer.Option(help="How the runs of a sweep (several --alpha-train values) train: on = as ONE stacked model, one attack and one forward/backward for all runs per step (pgd and trades only; the same checkpoints); off (default) = taking turns, each bit for bit its solo run. Stacked runs equal their solo runs bit for bit on the CPU, within float32 rounding on CUDA (docs/reproduction.md).")] = "off",
    quiet: Annotated[bool, typer.Option(help="No progress bars (epoch lines and results still print).")] = False,
) -> None:
    """Train a robust classifier with (weighted) PGD-AT or TRADES, or MART, GAIRAT, MAIL; resumable, checkpointed per epoch.

    Under torchrun (torchrun --nproc-per-node N -m wmrbench -- train ...) it trains with DDP.
    """
    from wmrbench import distributed
    from wmrbench.config import TrainOptions, parse_alphas
    from wmrbench.presets import describe_train_config
    from wmrbench.stacked import fit_runs
    from wmrbench.training import sweep_configs
    from wmrbench.training import config_for_run, fit

    with user_errors(), distributed.session():
        alphas = parse_alphas(alpha_train, "--alpha-train") if alpha_train is not None else None
        given = {**locals(), "alpha_train": alphas[0] if alphas and len(alphas) == 1 else None}
        options = o.options_from(TrainOptions, given)
        if alphas is None or len(alphas) == 1:
            cfg = config_for_run(dataset, defense, options, resume)
            if distributed.is_main_process():
                typer.echo(describe_train_config(cfg))
            result = fit(cfg, resume=resume, stop_after_epochs=stop_after_epochs, show_progress=not quiet)
            if distributed.is_main_process():
                typer.echo(f"checkpoint: {result.checkpoint}")
            return
        cfgs = sweep_configs(dataset, defense, options, alphas, resume)
        typer.echo(describe_train_config(cfgs[0]))
        typer.echo(f"sweep: {len(cfgs)} runs side by side, every setting as above but run and alpha_train: "
                   + ", ".join(f"{c.run} (alpha_train {c.alpha_train:g})" for c in cfgs))
        sweep = fit_runs(cfgs, stack=stack, resume=resume, missing_ok=True, stop_after_epochs=stop_after_epochs,
                         show_progress=not quiet)
    for cfg, result in zip(cfgs, sweep.results):
        if cfg.run not in sweep.failures:
            typer.echo(f"checkpoint: {result.checkpoint}")
    for message in sweep.failures.values():
        typer.echo(f"Error: {message}", err=True)
    if sweep.failures:
        raise typer.Exit(EXIT_USAGE)
