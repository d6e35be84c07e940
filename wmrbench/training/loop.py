"""The training loop: weighted adversarial training (Algorithm 1) with exact, atomic checkpoints
and resume, for a run named by its config (:func:`fit`) or several side by side (:func:`fit_sweep`);
:func:`wmrbench.training.api.fit` trains a user's own model and data through the same loop.

Every epoch ends by writing ``<checkpoint_dir>/<run>/last.pt`` atomically (model, optimizer,
scheduler, epoch, config, history; no wall-clock time, so identical runs write identical bytes),
``timing.jsonl`` (each epoch's seconds) and ``metrics.jsonl`` from the history it holds,
so a run killed at any moment resumes from its last finished epoch exactly as if it had never
stopped. The run folder has one writer at a time (a lock, :func:`wmrbench.core.io.lock_folder`), and
``--resume`` writes the folder it was given, whatever run name the checkpoint recorded.

A run that diverges stops with one line naming the epoch and the steps (the loss is checked
where it is read back anyway, once per ``log_every`` steps, and the weights once per epoch
before they are saved): ``last.pt`` keeps the last good epoch. A run that explodes but stays
finite is stopped by :mod:`wmrbench.training.divergence`'s rule, applied to each run's epoch history
(``--no-divergence-stop`` only warns).

Every random stream of an epoch (shuffle, attack starts, dropout, augmentation) is derived from
(seed, epoch, rank) when the epoch starts (:mod:`wmrbench.training.streams`), so a checkpoint
needs no RNG state and resume is exact with any number of processes (bit-identical for the same
number).

What is trained comes in as a :class:`~wmrbench.training.task.Task` (the data, the model
builder): from the config's names by default, or the user's own.

Under ``torchrun`` (several processes) the model trains with DistributedDataParallel: every rank
takes its shard of the same global permutation, ``batch_size`` stays the global batch (each
rank takes ``batch_size / world_size``), and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from wmrbench.core import distributed
from wmrbench.core.config import TrainConfig, parse_select_by, train_config_from_dict
from wmrbench.data import ImageSet
from wmrbench.core.errors import Interrupted, WmrbenchError, setting
from wmrbench.core.io import lock_folder, write_target
from wmrbench.core.progress import progress_bar
from wmrbench.core.runtime import prepare_model
from wmrbench.training.selection import carve_validation, selected_value, validate
from wmrbench.core.tensorboard import EpochLog
from wmrbench.training import step
from wmrbench.training.checkpoint import (
    TIMING_FILE, TrainResult, interrupted_line, read_training_checkpoint, restore, run_dir, save, with_timing,
)
from wmrbench.training.divergence import Diverged, check_finite_weights, check_history, diverged_line
from wmrbench.training.plan import merge_resume
from wmrbench.training.step import Run, TrainEpoch
from wmrbench.training.sweep import SweepResult, check_sweep
from wmrbench.training.task import Task, named_task


def fit(
    cfg: TrainConfig, *, resume: bool = False, stop_after_epochs: int | None = None,
    show_progress: bool = True, epoch_lines: bool = True,
) -> TrainResult:
    """Train ``cfg.arch`` on ``cfg.dataset``; return the path of ``last.pt`` and the history.

    ``stop_after_epochs`` ends this invocation after that many epochs (a time-boxed job); the
    run can then be continued with ``resume=True``. A run that diverges is one line.
    ``epoch_lines`` False prints nothing per epoch (the history still holds every epoch).
    """
    result = fit_sweep([cfg], resume=resume, stop_after_epochs=stop_after_epochs, show_progress=show_progress,
                       epoch_lines=epoch_lines)
    if result.failures:
        raise WmrbenchError(result.failures[cfg.run])
    return result.results[0]


def fit_sweep(
    cfgs: Sequence[TrainConfig], *, resume: bool = False, missing_ok: bool = False,
    stop_after_epochs: int | None = None, show_progress: bool = True, train_epoch: TrainEpoch | None = None,
    task: Task | None = None, epoch_lines: bool = True, seeds_may_differ: bool = False,
) -> SweepResult:
    """Train several runs side by side in this process, each exactly as :func:`fit` trains it alone.

    The runs share the data settings (:func:`check_sweep`): every batch is drawn and augmented
    once, then each run takes its step on it with its own model, optimizer and random streams
    (attack starts, dropout), so each run's weights and metrics are bit for bit those of the
    same run trained alone (on the CPU; tests/training/test_sweep.py). Each run keeps its own folder,
    lock, ``last.pt`` and ``metrics.jsonl``, so each can be resumed, evaluated or rerun alone.

    ``resume``: continue each run from its ``last.pt``; with ``missing_ok`` a run that has none
    yet starts from scratch (a sweep stopped before every run had saved an epoch). Runs may have
    finished different numbers of epochs: each takes the epochs it lacks. A run that diverges
    stops (its last good checkpoint is kept) and the others go on; it is in ``failures``.

    ``train_epoch`` takes each epoch of the runs in place of :func:`~wmrbench.training.step.train_epoch`
    (the stacked step of :mod:`wmrbench.training.stacked`, ``--stack on``); everything around the epoch
    stays this. ``task`` is what they train (default: what the configs name, :func:`named_task`).
    Each epoch prints one line naming its run (``epoch_lines`` False: none; ``train --quiet``
    keeps them, so a log says what happened; ``demo --quiet`` and ``fit(show_progress=False)``
    drop them).
    ``seeds_may_differ``: ``train_epoch`` draws each run's own batches (the stacked epoch does), so
    the runs may differ in their seed too.
    """
    if not cfgs:
        raise ValueError("fit_sweep needs at least one config")
    check_sweep(cfgs, seeds_may_differ=seeds_may_differ and train_epoch is not None)
    task = task or named_task(cfgs[0])  # the runs share the data set; each builds its own model
    device = distributed.resolve_device(cfgs[0].device)
    world_size = distributed.env_world_size()
    for cfg in cfgs:
        distributed.check_divides(cfg.batch_size, world_size)  # before any work, same on every rank
        task.check(cfg)
        last = run_dir(cfg) / "last.pt"
        # Checked again under the lock; these are the early answers, before any folder is locked.
        if not resume and last.exists():
            raise WmrbenchError(f"run {cfg.run!r} already has a checkpoint at {last}; use {setting('resume', True)} or another {setting('run')}")
        if resume and not missing_ok and not last.is_file():
            raise WmrbenchError(f"{setting('resume', True)}: no checkpoint at {last}")
        for name in ("last.pt", "best.pt", "metrics.jsonl", TIMING_FILE):  # never a device or FIFO, and before any work
            write_target(run_dir(cfg) / name)
    with contextlib.ExitStack() as folders:
        if distributed.is_main_process():
            for cfg in cfgs:
                folders.enter_context(
                    lock_folder(run_dir(cfg), "checkpoint folder", f"wait for that run to finish, or train another {setting('run')}")
                )
        try:
            # step.train_epoch looked up now, not at import: a test may pace it (test_reliability_paths)
            return _fit_locked(list(cfgs), task, device, world_size, resume, stop_after_epochs, show_progress,
                               train_epoch or step.train_epoch, epoch_lines)
        except KeyboardInterrupt as exc:  # Ctrl-C: say what each run kept (read under its lock)
            if isinstance(exc, Interrupted) or not distributed.is_main_process():
                raise
            raise Interrupted("; ".join(interrupted_line(cfg) for cfg in cfgs)) from None


def _fit_locked(
    cfgs: list[TrainConfig], task: Task, device: torch.device, world_size: int, resume: bool,
    stop_after_epochs: int | None, show_progress: bool, train_epoch: TrainEpoch, epoch_lines: bool = True,
) -> SweepResult:
    """:func:`fit_sweep` once every run folder is this process's (rank 0) alone."""
    saved: list[dict[str, Any]] = []
    for i, cfg in enumerate(cfgs):
        last = run_dir(cfg) / "last.pt"
        saved.append(read_training_checkpoint(last) if resume and last.is_file() else {})
        if saved[i]:
            cfgs[i] = merge_resume(train_config_from_dict(saved[i]["config"]), cfg)
        elif last.exists():
            raise WmrbenchError(f"run {cfg.run!r} already has a checkpoint at {last}; use {setting('resume', True)} or another {setting('run')}")

    # The runs share the data settings: one split, one held-out part, for all of them.
    train = _training_split(task, cfgs[0], device, world_size)
    val = None
    if task.held_out is not None:  # the user's own held-out split
        val = task.held_out.to(device)
    elif cfgs[0].val_size:  # carved from the training split with the seed: the test set stays unseen
        train, val = carve_validation(train, cfgs[0].val_size, cfgs[0].seed)
    if cfgs[0].n_train:  # --n-train: a first try on the first N (of those not held out)
        train = train.subset(cfgs[0].n_train)
        distributed.check_enough(len(train), world_size, "training examples")
    ctx = distributed.setup(device)
    runs = [_start_run(cfg, task, state, device, ctx, stop_after_epochs) for cfg, state in zip(cfgs, saved)]

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
                    check_history(run.cfg, task.classes, run.history, stats, epoch, progress.console)
                except Diverged as exc:  # last.pt (if any) still holds the last good epoch
                    run.failure = diverged_line(run.cfg, run.last, exc, sweep=len(runs) > 1)  # said once, at the end
                    continue
                _end_epoch(run, task, epoch, stats, weights, val, ctx, progress, epoch_lines)
    for run in runs:
        run.board.close()
    failures = {r.cfg.run: r.failure for r in runs if r.failure is not None}
    return SweepResult([TrainResult(r.last, r.history, r.model) for r in runs], failures)


def _start_run(
    cfg: TrainConfig, task: Task, saved: dict[str, Any], device: torch.device, ctx: distributed.Context,
    stop_after_epochs: int | None,
) -> Run:
    """A run's model, optimizer and scheduler: fresh from the seed, or restored from ``saved``."""
    model, optimizer, scheduler = build(cfg, device, task)
    history, start_epoch = restore(saved, model, optimizer, scheduler) if saved else ([], 0)
    history = with_timing(history, run_dir(cfg))  # the seconds live beside last.pt, not in it
    model = distributed.prepare_for_ddp(model, device)
    train_model = distributed.wrap_ddp(model, device)
    if cfg.compile:  # the training forward only; checkpoints keep saving ``model`` (no prefixes)
        train_model = torch.compile(train_model)
    end_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, start_epoch + stop_after_epochs)
    board = EpochLog(cfg.tensorboard if ctx.is_main else None)
    return Run(cfg, run_dir(cfg) / "last.pt", model, train_model, optimizer, scheduler, history, start_epoch,
                end_epoch, board)


def _end_epoch(
    run: Run, task: Task, epoch: int, stats: dict[str, Any], weights: Tensor | None, val: ImageSet | None,
    ctx: distributed.Context, progress: Any, epoch_lines: bool,
) -> None:
    """After a good epoch: the schedule, held-out metrics, the checkpoint, the epoch line."""
    cfg = run.cfg
    run.scheduler.step()
    if val is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
        stats.update(_validation_stats(run.model, val, cfg, task))
    run.history.append(stats)
    run.epoch = epoch + 1
    distributed.check_same_weights(run.model)
    if ctx.is_main:  # one writer; the other ranks hold identical weights
        save(run.last, cfg, run.model, run.optimizer, run.scheduler, epoch + 1, run.history,
              best=_is_best(run.history))
        if epoch_lines:  # every line names its run: the demo and sweeps train several
            line = _epoch_line(stats, cfg.epochs, run.history)
            # One line however long (a log is read by grep), and a run name is not markup.
            progress.console.print(f"{line}  run {cfg.run}", markup=False, soft_wrap=True)
        run.board.epoch(stats, weights)


def _epoch_line(stats: dict[str, Any], epochs: int, history: list[dict[str, Any]]) -> str:
    line = (f"epoch {stats['epoch']}/{epochs}  loss {stats['loss']:.4f}  adv acc {100 * stats['adv_accuracy']:.2f}%  "
            f"lr {stats['lr']:.4g}  {stats['seconds']:.1f}s")
    if "selected" in stats:
        best = "  (best so far: best.pt)" if _is_best(history) else ""
        by = stats["selected"]["by"]  # A_rob is printed once, as itself, when it is what best.pt selects by
        chosen = "" if by == "A_rob" else f" {by} {stats['selected']['value']:.2f}"
        line += f"  held-out A_nat {stats['val']['A_nat']:.2f} A_rob {stats['val']['A_rob']:.2f}{chosen}{best}"
    return line


def _validation_stats(model: nn.Module, val: ImageSet, cfg: TrainConfig, task: Task) -> dict[str, Any]:
    """The held-out metrics of this epoch and the value ``select_by`` ranks checkpoints by."""
    select = parse_select_by(cfg.select_by)
    eval_cfg = task.validation(cfg, select, len(val)) if task.validation is not None else None
    metrics = validate(model, val, cfg, select, eval_cfg)
    return {
        # as metrics.jsonl records them: alpha_test keys by their names
        "val": {k: v for k, v in metrics.to_json().items() if k in ("A_nat", "A_rob", "A_sa", "A_tr")},
        "selected": {"by": str(select), "value": selected_value(metrics, select)},
    }


def _is_best(history: list[dict[str, Any]]) -> bool:
    """The last epoch was evaluated and beats every earlier evaluated epoch (ties keep the earlier).

    The history is in the checkpoint, so a resumed run knows the best so far without more state.
    """
    values = [h["selected"]["value"] for h in history if "selected" in h]
    return "selected" in history[-1] and values.index(max(values)) == len(values) - 1


def _training_split(task: Task, cfg: TrainConfig, device: torch.device, world_size: int) -> ImageSet:
    """The training split on the device (the checkpoint folder is already made and locked).

    The whole split moves to the device once (uint8 for CIFAR-10 / Tiny ImageNet): batches,
    crops and flips are then gathers there, and the GPU never waits for a CPU loader.
    """
    train = task.training_split(cfg).to(device)
    distributed.check_enough(len(train), world_size, "training examples")
    return train


def build(
    cfg: TrainConfig, device: torch.device, task: Task | None = None,
) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    """A run's model (from ``task``, default: the config's names), optimizer and schedule."""
    task = task or named_task(cfg)
    torch.manual_seed(cfg.seed)  # the initial weights depend on the seed only
    model = prepare_model(task.new_model(cfg), device)
    # foreach: multi-tensor kernels on CUDA; on the CPU the same per-tensor ops as the loop (checked
    # bit for bit). Not fused: its one-kernel update is unmeasured here (no GPU) and may round otherwise.
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.gamma)
    return model, optimizer, scheduler
