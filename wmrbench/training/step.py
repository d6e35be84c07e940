"""One step of Algorithm 1 (:func:`train_step`) and one epoch of it over the runs this process
trains (:func:`train_epoch`), with the running sums that are read back once per ``log_every`` steps
(:class:`Tally`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wmrbench.core import distributed
from wmrbench.attacks import autocast, pgd, predict
from wmrbench.core.attack_config import InnerLoss, Precision
from wmrbench.core.config import AttackMode, TrainConfig
from wmrbench.data import ImageSet, batches
from wmrbench.data.augment import random_crop_flip
from wmrbench.defenses import LossInputs, get_defense
from wmrbench.defenses.objectives import Objective
from wmrbench.core.runtime import prepare_input
from wmrbench.core.tensorboard import EpochLog
from wmrbench.training.divergence import Diverged
from wmrbench.training.streams import GlobalRng, epoch_generators

# One epoch of the given runs: per run (stats, weights, divergence or None); see train_epoch.
TrainEpoch = Callable[..., list[tuple[dict[str, Any], "Tensor | None", "Diverged | None"]]]


@dataclass
class Run:
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


class Tally:
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


def train_epoch(
    runs: list[Run], train: ImageSet, *, epoch: int, device: torch.device, progress: Any,
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
    tallies = [Tally(device) for _ in runs]
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


