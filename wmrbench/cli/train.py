"""``wmrbench train``: adversarial training with a defense from the registry (PGD-AT or TRADES,
"+ours" when alpha > 0; MART, GAIRAT, MAIL-AT, MAIL-TRADES)."""

from __future__ import annotations

import typer

from wmrbench.cli import options as o
from wmrbench.cli import params as p
from wmrbench.cli.common import EXIT_USAGE, user_errors
from wmrbench.cli.config_file import ConfigFile
from wmrbench.cli.launching import report, settings_from
from wmrbench.launch.settings import Launcher, LaunchSettings


def train(
    config: ConfigFile = None,
    dataset: p.TrainDataset = None,
    defense: p.TrainDefense = None,
    alpha_train: p.TrainAlphaTrain = None,
    epochs: p.Epochs = None,
    seeds: p.TrainSeeds = None,
    seed: p.TrainSeed = None,
    run: p.TrainRun = None,
    data_dir: p.DataDir = None,
    download: p.Download = False,
    beta: p.Beta = None,
    burn_in: p.BurnIn = None,
    gair_lambda: p.GairLambda = None,
    mail_bias: p.MailBias = None,
    mail_slope: p.MailSlope = None,
    eps: p.TrainEps = None,
    step_size: p.TrainStepSize = None,
    steps: p.TrainSteps = None,
    restarts: p.TrainRestarts = None,
    start: p.TrainStart = None,
    arch: p.TrainArch = None,
    batch_size: p.TrainBatchSize = None,
    lr: p.Lr = None,
    momentum: p.Momentum = None,
    weight_decay: p.WeightDecay = None,
    milestones: p.Milestones = None,
    gamma: p.Gamma = None,
    augment: p.Augment = None,
    padding_mode: p.PaddingModeOpt = None,
    n_train: p.NTrain = None,
    max_steps: p.MaxSteps = None,
    eval_every: p.EvalEvery = None,
    val_size: p.ValSize = None,
    select_by: p.SelectBy = None,
    tensorboard: p.TensorboardOpt = None,
    log_every: p.LogEvery = None,
    checkpoint_dir: p.CheckpointDir = None,
    resume: p.TrainResume = False,
    stop_after_epochs: p.StopAfterEpochs = None,
    quiet: p.QuietBars = False,
    device: p.Device = None,
    precision: p.TrainPrecision = None,
    compile: p.TrainCompile = None,
    stack: p.StackOpt = "off",
    attack_mode: p.AttackModeOpt = None,
    detach_weights: p.DetachWeights = None,
    normalize_weights: p.NormalizeWeights = None,
    divergence_stop: p.DivergenceStop = None,
    verify_checksums: p.VerifyChecksums = None,
    launcher: p.LauncherOpt = None,
    launcher_dir: p.LauncherDir = None,
    partition: p.Partition = None,
    time_min: p.TimeMin = None,
    gpus_per_job: p.GpusPerJob = None,
    cpus_per_job: p.CpusPerJob = None,
    array_parallelism: p.ArrayParallelism = None,
    account: p.Account = None,
    sbatch: p.Sbatch = None,
    max_timeouts: p.MaxTimeouts = None,
) -> None:
    """Train a robust classifier: (weighted) PGD-AT or TRADES, MART, GAIRAT or MAIL.

    Resumable (--resume), checkpointed every epoch. Several --alpha-train values or --seeds train
    one run each. Under torchrun (torchrun --nproc-per-node N -m wmrbench -- train ...) it trains
    with DDP; with --launcher local or slurm each run is a job of its own (docs/cluster.md).
    """
    from wmrbench.core import distributed
    from wmrbench.core.config import parse_alphas, parse_ints
    from wmrbench.core.presets import describe_train_config
    from wmrbench.training.stacked import fit_groups
    from wmrbench.training import by_seed, check_train_seeds, sweep_configs
    from wmrbench.training import config_for_run, fit

    with user_errors():
        launch = settings_from(locals())
    if launch.launcher is not Launcher.INLINE:
        _train_as_jobs(launch, locals())
        return
    with user_errors(), distributed.session():
        alphas = parse_alphas(alpha_train, "alpha_train") if alpha_train is not None else None
        seed_list = check_train_seeds(parse_ints(seeds, "seeds"), seed) if seeds is not None else None
        given = {**locals(), "alpha_train": alphas[0] if alphas and len(alphas) == 1 else None}
        options = o.options_from(o.TRAIN_SETTINGS, given)
        if seed_list is None and (alphas is None or len(alphas) == 1):
            cfg = config_for_run(dataset, defense, options, resume)
            if distributed.is_main_process():
                typer.echo(describe_train_config(cfg))
            result = fit(cfg, resume=resume, stop_after_epochs=stop_after_epochs, show_progress=not quiet)
            if distributed.is_main_process():
                typer.echo(f"checkpoint: {result.checkpoint}")
            return
        cfgs = sweep_configs(dataset, defense, options, alphas or (None,), resume, seeds=seed_list)
        typer.echo(describe_train_config(cfgs[0]))
        varied = " and ".join(n for n, on in (("alpha_train", alphas is not None and len(alphas) > 1),
                                             ("seed", seed_list is not None)) if on)
        typer.echo(f"{len(cfgs)} runs, every setting as above but run and {varied}: "
                   + ", ".join(f"{c.run} (alpha_train {c.alpha_train:g}, seed {c.seed})" for c in cfgs))
        sweep = fit_groups(by_seed(cfgs), stack=stack, resume=resume, missing_ok=True,
                           stop_after_epochs=stop_after_epochs, show_progress=not quiet)
    for cfg, result in zip(cfgs, sweep.results):
        if cfg.run not in sweep.failures:
            typer.echo(f"checkpoint: {result.checkpoint}")
    for message in sweep.failures.values():
        typer.echo(f"Error: {message}", err=True)
    if sweep.failures:
        raise typer.Exit(EXIT_USAGE)


def _train_as_jobs(launch: LaunchSettings, given: dict) -> None:
    """One job per run (per --alpha-train value and per --seeds seed): the configs ``train`` would build, each trained
    on its own by a local process or a SLURM job."""
    from wmrbench.core import distributed
    from wmrbench.core.config import parse_alphas, parse_ints
    from wmrbench.core.errors import WmrbenchError, setting
    from wmrbench.launch import launch as run_jobs
    from wmrbench.training import check_train_seeds
    from wmrbench.launch import train_specs

    with user_errors():
        if distributed.env_world_size() > 1:
            raise WmrbenchError(f"{setting('launcher', launch.launcher.value)} submits jobs: run it without torchrun")
        if given["stack"] != "off" or given["stop_after_epochs"] is not None:
            which = "stack" if given["stack"] != "off" else "stop_after_epochs"
            raise WmrbenchError(f"{setting(which)} is for runs in this process; with {setting('launcher', launch.launcher.value)} "
                                f"each run is a job of its own (a job's time limit is {setting('time_min')})")
        resume = given["resume"]
        alphas = parse_alphas(given["alpha_train"], "alpha_train") if given["alpha_train"] is not None else None
        options = o.options_from(o.TRAIN_SETTINGS, {**given, "alpha_train": alphas[0] if alphas and len(alphas) == 1 else None})
        several = alphas if alphas is not None and len(alphas) > 1 else None
        seed_list = check_train_seeds(parse_ints(given["seeds"], "seeds"), given["seed"]) if given["seeds"] is not None else None
        specs = train_specs(given["dataset"], given["defense"], options, several, resume, seeds=seed_list)
        launched = run_jobs(specs, launch, resume=resume, show_progress=False)
    if report(launched, "wmrbench train ... --resume", "checkpoint:"):
        raise typer.Exit(EXIT_USAGE)
