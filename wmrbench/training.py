"""fit(): weighted adversarial training (Algorithm 1) with exact, atomic checkpoints and resume.

Every epoch ends by writing ``<checkpoint_dir>/<run>/last.pt`` atomically (model, optimizer,
scheduler, epoch, config, history) and rewriting ``metrics.jsonl`` from the history it holds,
so a run killed at any moment resumes from its last finished epoch exactly as if it had never
stopped. The run folder has one writer at a time (a lock, :func:`wmrbench.io.lock_folder`), and
``--resume`` writes the folder it was given, whatever run name the checkpoint recorded.

A run that diverges stops with one line naming the epoch and the steps (the loss is checked
where it is read back anyway, once per ``log_every`` steps, and the weights once per epoch
before they are saved): ``last.pt`` keeps the last good epoch. A run that explodes but stays
finite is stopped by :mod:`wmrbench.divergence`'s rule, applied to each run's epoch history
(``--no-divergence-stop`` only warns).

Every random stream of an epoch (shuffle, attack starts, dropout, augmentation) is derived from
(seed, epoch, rank) when the epoch starts, so a checkpoint needs no RNG state and resume is
exact with any number of processes (bit-identical for the same number).

Under ``torchrun`` (several processes) the model trains with DistributedDataParallel: every rank
takes its shard of the same global permutation, ``batch_size`` stays the global batch (each
rank takes ``batch_size / world_size``), and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wmrbench import distributed
from wmrbench.attacks import autocast, pgd, predict
from wmrbench.config import (
    RESUMABLE,
    AttackMode,
    DatasetName,
    Defense,
    InnerLoss,
    Precision,
    TrainConfig,
    TrainOptions,
    fields_with,
    option_name,
    parse_enum,
    parse_select_by,
    to_jsonable,
    train_config_from_dict,
)
from wmrbench.data import ImageSet, batches, dataset_spec, load_split
from wmrbench.data.augment import random_crop_flip
from wmrbench import divergence
from wmrbench.errors import Interrupted, WmrbenchError, first_line
from wmrbench.io import atomic_torch_save, atomic_write_text, lock_folder, write_target
from wmrbench.models import create_model, model_spec
from wmrbench.models.checkpoint import CHECKPOINT_FORMAT, read_checkpoint
from wmrbench.defenses import LossInputs, check_spec, get_defense
from wmrbench.objectives import Objective
from wmrbench.presets import DEFAULT_DATASET, DEFAULT_DEFENSE, train_config
from wmrbench.progress import progress_bar
from wmrbench.runtime import prepare_input, prepare_model, provenance
from wmrbench.selection import carve_validation, selected_value, validate
from wmrbench.tensorboard import EpochLog

# Random streams of an epoch, each seeded from (seed, epoch, rank, stream).
SHUFFLE, ATTACK, DROPOUT, AUGMENT = 0, 1, 2, 3

# Settings that may change when a run is resumed (marked in TrainConfig): where things are, how
# long to go on, and how fast (compile) or how carefully (download, verify_checksums) to get there.
RESUMABLE_SETTINGS = fields_with(TrainConfig, RESUMABLE)


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, Any]]


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.checkpoint_dir) / cfg.run


class Diverged(WmrbenchError):
    """The loss or the weights stopped being finite (a too large --lr, a too large alpha_train)."""

    def __init__(self, what: str, epoch: int, finite: bool = False) -> None:
        super().__init__(what)
        self.what, self.epoch, self.finite = what, epoch, finite  # finite: the divergence rule, not NaN


def train_step(
    model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig, generator: torch.Generator,
    precision: Precision | str, train_model: nn.Module | None = None, epoch: int = 0,
) -> tuple[Objective, Tensor]:
    """One step of Algorithm 1: attack in eval mode, then the defense's loss in train mode.

    The defense (:mod:`wmrbench.defenses`, by ``cfg.defense``) says what the training attack
    ascends, whether it must count the steps each example survived (GAIRAT), which forward
    passes its loss needs, and the loss itself; ``epoch`` (0-based) is for burn-in.
    ``model`` is the bare module the attack runs on; ``train_model`` (default: ``model``) is
    what the training forward passes go through: the DDP wrapper of ``model`` when several
    processes train, and/or its ``torch.compile`` (``--compile``). The attack always runs the
    bare ``model``: eval mode, frozen parameters and input-only gradients make other graphs than
    the training forward's, which a compiled module would guard on and compile again.
    ``precision`` (normally ``cfg.precision``) applies to the attack and the training forward.
    Returns the objective (not yet backpropagated) and the attack's margins.
    """
    forward = model if train_model is None else train_model
    defense = get_defense(cfg.defense)
    # "+ours": one alpha drives attack and loss (defenses without the weight keep alpha_train 0)
    alpha = cfg.alpha_train if defense.alpha_weighted and cfg.alpha_train > 0 else None
    natural_logits = predict(model, x, precision) if defense.inner_loss is InnerLoss.KL else None
    result = pgd(
        model, x, y, cfg.attack, alpha=alpha, loss=defense.inner_loss,
        generator=generator, natural_logits=natural_logits, precision=precision,
        train_mode=cfg.attack_mode is AttackMode.TRAIN, count_survived=defense.counts_survived,
    )
    forward.train()
    with autocast(x.device.type, precision):
        logits_adv = forward(result.x_adv)
        logits_nat = forward(x) if defense.natural_forward else None
    objective = defense.loss(LossInputs(logits_adv, logits_nat, y, result.survived, epoch), cfg)
    return objective, result.margin


def _build(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    info = dataset_spec(cfg.dataset).info
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    model = prepare_model(create_model(cfg.arch, info.num_classes, info.in_channels), device)
    # foreach: multi-tensor kernels on CUDA; on the CPU the same per-tensor ops as the loop (checked
    # bit for bit). Not fused: its one-kernel update is unmeasured here (no GPU) and may round otherwise.
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.gamma)
    return model, optimizer, scheduler


def stream_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A well-mixed 63-bit seed for one random stream of one epoch on one rank."""
    words = np.random.SeedSequence(seed % 2**64, spawn_key=(epoch, rank, stream)).generate_state(2, np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & (2**63 - 1)


def epoch_generators(seed: int, epoch: int, rank: int, device: torch.device) -> dict[str, torch.Generator]:
    """Fresh random streams for one epoch on one rank; also reseeds the global RNG (dropout).

    Deriving them from (seed, epoch, rank) instead of carrying them over from the previous
    epoch is what makes resume exact without saving any RNG state, with any number of ranks:
    the shuffle is the same on every rank (one global permutation, each rank takes its shard),
    the attack starts and dropout masks differ per rank.
    """
    torch.manual_seed(stream_seed(seed, epoch, rank, DROPOUT))  # CPU and every CUDA device
    return {
        "shuffle": torch.Generator().manual_seed(stream_seed(seed, epoch, 0, SHUFFLE)),
        "attack": torch.Generator(device=device).manual_seed(stream_seed(seed, epoch, rank, ATTACK)),
        "augment": torch.Generator(device=device).manual_seed(stream_seed(seed, epoch, rank, AUGMENT)),
    }


def config_for_run(
    dataset: DatasetName | str | None, defense: Defense | str | None, options: TrainOptions, resume: bool,
) -> TrainConfig:
    """The run's config: the preset with the options on top, or (``resume``) the saved config
    with the options on top, where only resumable settings may differ (:func:`merge_resume`)."""
    if options.arch is not None:
        model_spec(options.arch)  # unknown arch -> one line, before any work
    fresh = train_config(dataset or DEFAULT_DATASET, defense or DEFAULT_DEFENSE, **options.given())
    if not resume:
        distributed.check_divides(fresh.batch_size, distributed.env_world_size())
        check_before_work(fresh)
        return fresh
    saved = train_config_from_dict(_read_training_checkpoint(run_dir(fresh) / "last.pt")["config"])
    # The folder read is the folder written: a copied run folder continues as its own run.
    requested = dataclasses.replace(options.apply(saved), run=fresh.run)
    if dataset is not None:
        requested = dataclasses.replace(requested, dataset=parse_enum(DatasetName, dataset, "dataset"))
    if defense is not None:
        requested = dataclasses.replace(requested, defense=parse_enum(Defense, defense, "defense"))
    resumed = merge_resume(saved, requested)
    distributed.check_divides(resumed.batch_size, distributed.env_world_size())
    check_before_work(resumed)
    return resumed


def check_before_work(cfg: TrainConfig) -> None:
    """What can be known wrong before any work: the device, the architecture against the data,
    and settings the defense cannot take."""
    distributed.resolve_device(cfg.device)
    check_spec(get_defense(cfg.defense), cfg)
    check_arch_fits(cfg)


def _read_training_checkpoint(last: Path) -> dict[str, Any]:
    if not last.is_file():
        raise WmrbenchError(f"--resume: no checkpoint at {last}")
    saved = read_checkpoint(last)
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise WmrbenchError(f"--resume: {last} is not a wmrbench training checkpoint")
    try:
        train_config_from_dict(saved.get("config"))
    except WmrbenchError as exc:
        raise WmrbenchError(f"--resume: {last} records a config this version cannot use ({exc})") from None
    return saved


def check_arch_fits(cfg: TrainConfig) -> None:
    """One forward pass of a fresh ``cfg.arch`` on one zero image of the data set's shape, on the
    CPU: an architecture that cannot take the data set's inputs is one line before any work."""
    info = dataset_spec(cfg.dataset).info
    shape = (info.in_channels, info.image_size, info.image_size)
    with torch.random.fork_rng(devices=[]):  # the run's own initial weights come from its seed
        model = create_model(cfg.arch, info.num_classes, info.in_channels).eval()
        try:
            with torch.no_grad():
                logits = model(torch.zeros(1, *shape))
        except RuntimeError as exc:
            raise WmrbenchError(
                f"--arch {cfg.arch} cannot take {cfg.dataset.value} inputs of shape {shape}: {first_line(exc)}"
            ) from None
    if tuple(logits.shape) != (1, info.num_classes):
        raise WmrbenchError(
            f"--arch {cfg.arch} gives outputs of shape {tuple(logits.shape[1:])} on {cfg.dataset.value}, "
            f"which has {info.num_classes} classes"
        )


def merge_resume(saved: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """The saved config, with the requested values of the resumable settings; any other
    setting that differs is refused by name."""
    changed = [
        f.name for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_SETTINGS and getattr(saved, f.name) != getattr(requested, f.name)
    ]
    if changed:
        raise WmrbenchError(
            f"--resume: run {saved.run!r} was trained with other settings ({', '.join(changed)}); "
            "drop those options or start a new --run"
        )
    return dataclasses.replace(saved, **{k: getattr(requested, k) for k in RESUMABLE_SETTINGS})


# Settings every run of a sweep must share: they decide the data each step sees (which examples,
# in which order, augmented how), so that one batch, drawn and augmented once, serves them all.
SHARED_BY_SWEEP = (
    "dataset", "data_dir", "download", "verify_checksums", "batch_size", "seed", "augment", "padding_mode",
    "val_size", "device",
)


@dataclass
class SweepResult:
    """What :func:`fit_sweep` did: one result per run in the order given, and the runs that
    stopped early (divergence), each with its one-line reason."""

    results: list[TrainResult]
    failures: dict[str, str]


def check_sweep(cfgs: Sequence[TrainConfig]) -> None:
    """Several runs may train side by side only if they share the data settings (one line naming
    the first that differs) and write different folders."""
    folders = [run_dir(cfg).resolve() for cfg in cfgs]
    for i, folder in enumerate(folders):
        if folder in folders[:i]:
            raise WmrbenchError(f"two runs of the sweep write the same folder {run_dir(cfgs[i])}: give each its own --run")
    for cfg in cfgs[1:]:
        differ = [name for name in SHARED_BY_SWEEP if getattr(cfg, name) != getattr(cfgs[0], name)]
        if differ:
            raise WmrbenchError(
                f"runs {cfgs[0].run!r} and {cfg.run!r} cannot train side by side: they differ in "
                f"{', '.join(option_name(n) for n in differ)}; the runs of a sweep share the data settings"
            )
    if len(cfgs) > 1 and distributed.env_world_size() > 1:
        raise WmrbenchError("a sweep (several --alpha-train values) trains in one process: run it without torchrun, "
                            "or train one alpha_train per torchrun job")


def fit(
    cfg: TrainConfig, *, resume: bool = False, stop_after_epochs: int | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.dataset``; return the path of ``last.pt`` and the history.

    ``stop_after_epochs`` ends this invocation after that many epochs (a time-boxed job); the
    run can then be continued with ``resume=True``. A run that diverges is one line.
    """
    result = fit_sweep([cfg], resume=resume, stop_after_epochs=stop_after_epochs, show_progress=show_progress)
    if result.failures:
        raise WmrbenchError(result.failures[cfg.run])
    return result.results[0]


def fit_sweep(
    cfgs: Sequence[TrainConfig], *, resume: bool = False, missing_ok: bool = False,
    stop_after_epochs: int | None = None, show_progress: bool = True, train_epoch: TrainEpoch | None = None,
) -> SweepResult:
    """Train several runs side by side in this process, each exactly as :func:`fit` trains it alone.

    The runs share the data settings (:func:`check_sweep`): every batch is drawn and augmented
    once, then each run takes its step on it with its own model, optimizer and random streams
    (attack starts, dropout), so each run's weights and metrics are bit for bit those of the
    same run trained alone (on the CPU; tests/test_sweep.py). Each run keeps its own folder,
    lock, ``last.pt`` and ``metrics.jsonl``, so each can be resumed, evaluated or rerun alone.

    ``resume``: continue each run from its ``last.pt``; with ``missing_ok`` a run that has none
    yet starts from scratch (a sweep stopped before every run had saved an epoch). Runs may have
    finished different numbers of epochs: each takes the epochs it lacks. A run that diverges
    stops (its last good checkpoint is kept) and the others go on; it is in ``failures``.

    ``train_epoch`` takes each epoch of the runs in place of :func:`_train_epoch` (the stacked
    step of :mod:`wmrbench.stacked`, ``--stack on``); everything around the epoch stays this.
    """
    if not cfgs:
        raise ValueError("fit_sweep needs at least one config")
    check_sweep(cfgs)
    device = distributed.resolve_device(cfgs[0].device)
    world_size = distributed.env_world_size()
    for cfg in cfgs:
        distributed.check_divides(cfg.batch_size, world_size)  # before any work, same on every rank
        check_arch_fits(cfg)
        last = run_dir(cfg) / "last.pt"
        # Checked again under the lock; these are the early answers, before any folder is locked.
        if not resume and last.exists():
            raise WmrbenchError(f"run {cfg.run!r} already has a checkpoint at {last}; use --resume or another --run")
        if resume and not missing_ok and not last.is_file():
            raise WmrbenchError(f"--resume: no checkpoint at {last}")
        for name in ("last.pt", "best.pt", "metrics.jsonl"):  # never a device or FIFO, and before any work
            write_target(run_dir(cfg) / name)
    with contextlib.ExitStack() as folders:
        if distributed.is_main_process():
            for cfg in cfgs:
                folders.enter_context(
                    lock_folder(run_dir(cfg), "checkpoint folder", "wait for that run to finish, or train another --run")
                )
        try:
            return _fit_locked(list(cfgs), device, world_size, resume, stop_after_epochs, show_progress,
                               train_epoch or _train_epoch)
        except KeyboardInterrupt as exc:  # Ctrl-C: say what each run kept (read under its lock)
            if isinstance(exc, Interrupted) or not distributed.is_main_process():
                raise
            raise Interrupted("; ".join(_interrupted_line(cfg) for cfg in cfgs)) from None


def _interrupted_line(cfg: TrainConfig) -> str:
    """What a Ctrl-C kept of one run: its last finished epoch (last.pt is written once per epoch,
    atomically, so only the epoch that was running is lost), and the command that continues it."""
    last = run_dir(cfg) / "last.pt"
    try:
        saved = _read_training_checkpoint(last) if last.is_file() else None
    except WmrbenchError:
        saved = None
    if saved is None:
        return f"run {cfg.run}: no epoch had finished, nothing was saved; run the same command again to start it"
    command = shlex.join(["wmrbench", "train", "--run", cfg.run, "--checkpoint-dir", cfg.checkpoint_dir, "--resume"])
    epochs = saved.get("config", {}).get("epochs", cfg.epochs)
    return (f"run {cfg.run}: {last} holds epoch {int(saved['epoch'])} of {epochs} (the epoch that was running "
            f"is lost); continue with: {command}")



# One epoch of the given runs: per run (stats, weights, divergence or None); see _train_epoch.
TrainEpoch = Callable[..., list[tuple[dict[str, Any], "Tensor | None", "Diverged | None"]]]


@dataclass
class _Run:
    """One model this process trains: a run on its own, or one run of a sweep."""

    cfg: TrainConfig
    last: Path
    model: nn.Module
    train_model: nn.Module  # what the training forward goes through (DDP, torch.compile)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    history: list[dict[str, Any]]
    epoch: int  # epochs finished
    end_epoch: int  # this invocation stops after this many
    board: EpochLog
    failure: str | None = None  # why it stopped early (one line), else None


def _fit_locked(
    cfgs: list[TrainConfig], device: torch.device, world_size: int, resume: bool,
    stop_after_epochs: int | None, show_progress: bool, train_epoch: TrainEpoch,
) -> SweepResult:
    """:func:`fit_sweep` once every run folder is this process's (rank 0) alone."""
    saved: list[dict[str, Any]] = []
    for i, cfg in enumerate(cfgs):
        last = run_dir(cfg) / "last.pt"
        saved.append(_read_training_checkpoint(last) if resume and last.is_file() else {})
        if saved[i]:
            cfgs[i] = merge_resume(train_config_from_dict(saved[i]["config"]), cfg)
        elif last.exists():
            raise WmrbenchError(f"run {cfg.run!r} already has a checkpoint at {last}; use --resume or another --run")

    # The runs share the data settings: one split, one held-out part, for all of them.
    train = _training_split(cfgs[0], device, world_size)
    val = None
    if cfgs[0].val_size:  # carved from the training split with the seed: the test set stays unseen
        train, val = carve_validation(train, cfgs[0].val_size, cfgs[0].seed)
    if cfgs[0].n_train:  # --n-train: a first try on the first N (of those not held out)
        train = train.subset(cfgs[0].n_train)
        distributed.check_enough(len(train), world_size, "training examples")
    ctx = distributed.setup(device)
    runs = [_start_run(cfg, state, device, ctx, stop_after_epochs) for cfg, state in zip(cfgs, saved)]

    with progress_bar(enabled=show_progress and ctx.is_main) as progress:
        for epoch in range(min(r.epoch for r in runs), max(r.end_epoch for r in runs)):
            active = [r for r in runs if r.failure is None and r.epoch == epoch < r.end_epoch]
            if not active:
                continue
            outcomes = train_epoch(active, train, epoch=epoch, device=device, progress=progress, ctx=ctx)
            for run, (stats, weights, diverged) in zip(active, outcomes):
                try:
                    if diverged is not None:
                        raise diverged
                    check_finite_weights(run.model, epoch)
                    check_divergence(run, stats, epoch, progress)
                except Diverged as exc:  # last.pt (if any) still holds the last good epoch
                    run.failure = _diverged_line(run, exc, sweep=len(runs) > 1)  # said once, at the end
                    continue
                _end_epoch(run, epoch, stats, weights, val, ctx, progress, tag=len(runs) > 1)
    for run in runs:
        run.board.close()
    failures = {r.cfg.run: r.failure for r in runs if r.failure is not None}
    return SweepResult([TrainResult(r.last, r.history) for r in runs], failures)


def _start_run(
    cfg: TrainConfig, saved: dict[str, Any], device: torch.device, ctx: distributed.Context,
    stop_after_epochs: int | None,
) -> _Run:
    """A run's model, optimizer and scheduler: fresh from the seed, or restored from ``saved``."""
    model, optimizer, scheduler = _build(cfg, device)
    history, start_epoch = _restore(saved, model, optimizer, scheduler) if saved else ([], 0)
    model = distributed.prepare_for_ddp(model, device)
    train_model = distributed.wrap_ddp(model, device)
    if cfg.compile:  # the training forward only; checkpoints keep saving ``model`` (no prefixes)
        train_model = torch.compile(train_model)
    end_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, start_epoch + stop_after_epochs)
    board = EpochLog(cfg.tensorboard if ctx.is_main else None)
    return _Run(cfg, run_dir(cfg) / "last.pt", model, train_model, optimizer, scheduler, history, start_epoch,
                end_epoch, board)


def _end_epoch(
    run: _Run, epoch: int, stats: dict[str, Any], weights: Tensor | None, val: ImageSet | None,
    ctx: distributed.Context, progress: Any, tag: bool,
) -> None:
    """After a good epoch: the schedule, held-out metrics, the checkpoint, the epoch line."""
    cfg = run.cfg
    run.scheduler.step()
    if val is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
        stats.update(_validation_stats(run.model, val, cfg))
    run.history.append(stats)
    run.epoch = epoch + 1
    distributed.check_same_weights(run.model)
    if ctx.is_main:  # one writer; the other ranks hold identical weights
        _save(run.last, cfg, run.model, run.optimizer, run.scheduler, epoch + 1, run.history,
              best=_is_best(run.history))
        line = _epoch_line(stats, cfg.epochs, run.history)
        # One line however long (a log is read by grep), and a run name is not markup.
        progress.console.print(f"{line}  run {cfg.run}" if tag else line, markup=False, soft_wrap=True)
        run.board.epoch(stats, weights)


def check_divergence(run: _Run, stats: dict[str, Any], epoch: int, progress: Any) -> None:
    """:mod:`wmrbench.divergence`'s rule on the run's history with this epoch's statistics (read
    back once per epoch already): Diverged, or with ``--no-divergence-stop`` a warning line."""
    cfg = run.cfg
    rule = divergence.DivergenceRule(dataset_spec(cfg.dataset).info.num_classes,
                          divergence.loss_scale(cfg.alpha_train, cfg.beta if cfg.defense is Defense.TRADES else None))
    found = divergence.diverged([*run.history, stats], rule)
    if found is None:
        return
    if cfg.divergence_stop:
        raise Diverged(found.what, epoch, finite=True)
    progress.console.print(f"Warning: run {cfg.run}: {found.what}; {divergence.likely_cause(cfg.lr, cfg.alpha_train)} "
                           "(going on: --no-divergence-stop)", markup=False, soft_wrap=True)


def _diverged_line(run: _Run, exc: Diverged, sweep: bool) -> str:
    cfg, epoch = run.cfg, exc.epoch
    kept = f"the last good checkpoint {run.last} (epoch {epoch}) is kept" if epoch else "no checkpoint was written"
    lower = f"--lr (now {cfg.lr:g})"
    if cfg.alpha_train > 0:
        lower += f" or --alpha-train (now {cfg.alpha_train:g})"
    advice = f"{divergence.likely_cause(cfg.lr, cfg.alpha_train)} train a new --run with a lower {lower}"
    if exc.finite:  # the rule's judgement, not NaN: someone who knows better may go on
        advice += ", or pass --no-divergence-stop to go on anyway"
    if sweep:
        return f"run {cfg.run!r} diverged: {exc.what}; it stopped, the other runs went on; {kept}; {advice}"
    return f"training diverged: {exc.what}; stopped, {kept}; {advice}"


def _epoch_line(stats: dict[str, Any], epochs: int, history: list[dict[str, Any]]) -> str:
    line = (f"epoch {stats['epoch']}/{epochs}  loss {stats['loss']:.4f}  adv acc {100 * stats['adv_accuracy']:.2f}%  "
            f"lr {stats['lr']:.4g}  {stats['seconds']:.1f}s")
    if "selected" in stats:
        best = "  (best so far: best.pt)" if _is_best(history) else ""
        line += (f"  held-out A_nat {stats['val']['A_nat']:.2f} A_rob {stats['val']['A_rob']:.2f} "
                 f"{stats['selected']['by']} {stats['selected']['value']:.2f}{best}")
    return line


def _validation_stats(model: nn.Module, val: ImageSet, cfg: TrainConfig) -> dict[str, Any]:
    """The held-out metrics of this epoch and the value ``select_by`` ranks checkpoints by."""
    select = parse_select_by(cfg.select_by)
    metrics = validate(model, val, cfg, select)
    return {
        "val": {"A_nat": metrics.A_nat, "A_rob": metrics.A_rob, "A_sa": metrics.A_sa, "A_tr": metrics.A_tr},
        "selected": {"by": str(select), "value": selected_value(metrics, select)},
    }


def _is_best(history: list[dict[str, Any]]) -> bool:
    """The last epoch was evaluated and beats every earlier evaluated epoch (ties keep the earlier).

    The history is in the checkpoint, so a resumed run knows the best so far without more state.
    """
    values = [h["selected"]["value"] for h in history if "selected" in h]
    return "selected" in history[-1] and values.index(max(values)) == len(values) - 1


def _training_split(cfg: TrainConfig, device: torch.device, world_size: int) -> ImageSet:
    """The training split on the device (the checkpoint folder is already made and locked).

    The whole split moves to the device once (uint8 for CIFAR-10 / Tiny ImageNet): batches,
    crops and flips are then gathers there, and the GPU never waits for a CPU loader.
    """
    train = load_split(
        cfg.dataset, cfg.data_dir, train=True, download=cfg.download, verify_checksums=cfg.verify_checksums
    ).to(device)
    distributed.check_enough(len(train), world_size, "training examples")
    return train


def check_finite_weights(model: nn.Module, epoch: int) -> None:
    """Once per epoch, before saving: every floating-point parameter and buffer is finite (one
    host sync), so a checkpoint never holds NaN weights."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
        raise Diverged(f"the weights are not finite at the end of epoch {epoch + 1}", epoch)


def _restore(
    saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
) -> tuple[list[dict[str, Any]], int]:
    """Load a checkpoint's state; return its history and the number of finished epochs.

    Every rank reads the same file (multi-node: a shared --checkpoint-dir); nothing in it
    depends on the number of processes, so any world size can continue any run.
    """
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return list(saved["history"]), int(saved["epoch"])


class GlobalRng:
    """One run's own state of torch's global random generator (dropout masks), for sweeps.

    Dropout draws from the global generator, which :func:`epoch_generators` seeds when an epoch
    starts. Runs that take turns in one process would draw each other's masks; instead each run
    keeps its own state and swaps it in for its steps, so it draws exactly what it draws alone.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            if self.cuda is not None:
                self.cuda = torch.cuda.get_rng_state(self.device)


class _Tally:
    """One run's running sums over an epoch. They stay on the device and are read back once per
    ``log_every`` steps, not per step, so the step never waits for the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.weight_sum = torch.zeros((), device=device)
        self.weights: list[Tensor] = []  # the epoch's importance weights, on the device, for the histogram
        self.seen = 0
        self.checked = 0  # steps up to here had a finite loss

    def add(self, objective: Objective, adv_margin: Tensor, n: int) -> None:
        self.loss_sum += objective.loss.detach() * n
        self.correct += (adv_margin > 0).sum()
        self.weight_sum += objective.weights.sum()
        self.weights.append(objective.weights.detach())
        self.seen += n

    def running_loss(self, step: int, n_batches: int, epoch: int, lr: float, ctx: distributed.Context) -> float:
        """The mean loss so far (one read-back); Diverged if any step since the last check was not finite."""
        # The running loss is read back here anyway: its finiteness costs no extra sync. A
        # non-finite step makes the running sum non-finite, so no step goes unchecked.
        running = self.loss_sum / self.seen
        diverged = running.isfinite().logical_not().float()
        if ctx.enabled:  # a rank that diverged stops every rank, at the same step
            diverged = distributed.all_reduce_sum(diverged)
        running_loss, diverged_ranks = torch.stack([running, diverged]).tolist()
        if diverged_ranks > 0:
            steps = f"step {step + 1}" if step == self.checked else f"steps {self.checked + 1}-{step + 1}"
            value = running_loss if not math.isfinite(running_loss) else "non-finite on another process"
            raise Diverged(f"the loss became {value} in epoch {epoch + 1} (lr {lr:g}), {steps} of {n_batches}", epoch)
        self.checked = step + 1
        return running_loss

    def stats(self, epoch: int, lr: float, ctx: distributed.Context, seconds: float) -> tuple[dict[str, Any], Tensor | None]:
        # The epoch's statistics are over all ranks' examples: one all-reduce per epoch.
        totals = distributed.all_reduce_sum(torch.stack(
            [self.loss_sum, self.correct.float(), self.weight_sum, torch.tensor(float(self.seen), device=self.device)]
        ))
        loss_total, correct_total, weight_total, seen_total = totals.tolist()
        stats = {
            "epoch": epoch + 1,
            "loss": loss_total / seen_total,
            "adv_accuracy": correct_total / seen_total,  # under the training attack, before the step
            "mean_weight": weight_total / seen_total,
            "lr": lr,
            "processes": ctx.world_size,
            "seconds": seconds,
        }
        return stats, (torch.cat(self.weights) if self.weights else None)


def _train_epoch(
    runs: list[_Run], train: ImageSet, *, epoch: int, device: torch.device, progress: Any,
    ctx: distributed.Context = distributed.Context(),
) -> list[tuple[dict[str, Any], Tensor | None, Diverged | None]]:
    """One epoch of every run over the same batches; per run (stats, weights, divergence or None).

    Each batch is drawn and augmented once (the runs share the data settings, so each would draw
    the same batch alone); every run then takes its step with its own attack generator and, when
    several runs take turns, its own global random state (:class:`GlobalRng`). A run that
    diverges stops taking steps; the others go on. ``seconds`` is the epoch's wall time (the
    whole sweep's, for a run of a sweep).
    """
    started = time.perf_counter()
    data = runs[0].cfg  # the data settings are the same for every run (check_sweep)
    generators, rngs = [], []
    for run in runs:  # each run's streams are those it gets alone: seeded from (seed, epoch, rank)
        generators.append(epoch_generators(run.cfg.seed, epoch, ctx.rank, device))
        rngs.append(GlobalRng(device) if len(runs) > 1 else None)
    lrs = [run.optimizer.param_groups[0]["lr"] for run in runs]
    order = torch.randperm(len(train), generator=generators[0]["shuffle"])  # the same on every rank
    mine = distributed.epoch_shard(order, ctx.rank, ctx.world_size)
    batch_size = data.batch_size // ctx.world_size  # per rank; the global batch is cfg.batch_size
    n_batches = (len(mine) + batch_size - 1) // batch_size
    if data.max_steps:  # --max-steps: the epoch ends after that many batches
        n_batches = min(n_batches, data.max_steps)
    several = f" ({len(runs)} runs)" if len(runs) > 1 else ""
    task = progress.add_task(f"epoch {epoch + 1}/{data.epochs}{several}", total=n_batches, info="")
    tallies = [_Tally(device) for _ in runs]
    diverged: list[Diverged | None] = [None] * len(runs)
    for step, (_, x, y) in enumerate(batches(train, batch_size, mine)):
        if step >= n_batches:
            break
        if data.augment:  # random crop (padding 4) + flip, batched on the device, once for every run
            x = random_crop_flip(x, generators[0]["augment"], padding_mode=data.padding_mode.value)
        x = prepare_input(x, device)
        for i, run in enumerate(runs):
            if diverged[i] is not None:
                continue
            with rngs[i].active() if rngs[i] is not None else contextlib.nullcontext():
                objective, adv_margin = train_step(
                    run.model, x, y, run.cfg, generators[i]["attack"], run.cfg.precision, run.train_model,
                    epoch=epoch,
                )
                run.optimizer.zero_grad(set_to_none=True)
                objective.loss.backward()
                run.optimizer.step()
            tallies[i].add(objective, adv_margin, len(y))
        # The bar moves every step (a host-side count); losses are read back once per log_every steps.
        losses = []
        for i, run in enumerate(runs):
            if diverged[i] is None and ((step + 1) % run.cfg.log_every == 0 or step + 1 == n_batches):
                try:
                    losses.append(f"{tallies[i].running_loss(step, n_batches, epoch, lrs[i], ctx):.4f}")
                except Diverged as exc:
                    diverged[i] = exc
        if all(d is not None for d in diverged):
            break
        progress.update(task, completed=step + 1, **({"info": "loss " + " | ".join(losses)} if losses else {}))
    progress.remove_task(task)
    seconds = time.perf_counter() - started
    outcomes = []
    for i in range(len(runs)):
        if diverged[i] is not None:
            outcomes.append(({}, None, diverged[i]))
        else:
            outcomes.append((*tallies[i].stats(epoch, lrs[i], ctx, seconds), None))
    return outcomes


def _save(
    path: Path, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR, epoch: int, history: list[dict[str, Any]],
    best: bool = False,
) -> None:
    """last.pt (and best.pt, the same checkpoint, when this epoch is the best held-out one)."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "config": to_jsonable(cfg),
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "versions": provenance(),
    }
    atomic_torch_save(path, checkpoint)
    if best:
        atomic_torch_save(path.parent / "best.pt", checkpoint)
    # metrics.jsonl is rebuilt from the checkpoint's history: it can never disagree with it.
    atomic_write_text(path.parent / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


@dataclass
class TrainRerun:
    original: Path
    result: TrainResult
    differences: list[str]  # empty when every weight and every epoch's statistics are the same


def rerun_training(checkpoint: str | Path, run: str | None = None, show_progress: bool = True) -> TrainRerun:
    """Train again exactly as a checkpoint records (config, seed, as many epochs as it had done),
    into a new run beside it, and say whether the weights and the history are the same."""
    checkpoint = Path(checkpoint)
    saved = _read_training_checkpoint(checkpoint)
    cfg = train_config_from_dict(saved["config"])
    run = run or f"{cfg.run}-rerun"
    if run == cfg.run:
        raise WmrbenchError(f"--run {run} is the run being rerun: give the rerun another name")
    again = dataclasses.replace(cfg, run=run, checkpoint_dir=str(checkpoint.parent.parent))
    result = fit(again, stop_after_epochs=int(saved["epoch"]), show_progress=show_progress)
    redone = read_checkpoint(result.checkpoint)
    differences = [f"weights {key} differ" for key, value in saved["model"].items()
                   if key not in redone["model"] or not torch.equal(value, redone["model"][key])]
    for old, new in zip(saved["history"], redone["history"]):
        changed = [k for k in ("loss", "adv_accuracy", "mean_weight", "lr") if old.get(k) != new.get(k)]
        if changed:
            differences.append(f"epoch {old['epoch']}: {', '.join(changed)} differ")
    return TrainRerun(checkpoint, result, differences)
