"""``fit(model, train_data, ...)``: adversarial training of YOUR model on YOUR data, through the same
loop as ``wmrbench train`` (:func:`wmrbench.training.loop.fit_sweep`).

Everything ``train`` has comes with it: ``last.pt`` written atomically every epoch and exact
``resume`` from it (into the model you pass), ``best.pt`` chosen on a held-out part of the
training data (``val_size``, carved with the seed; never your test set), the divergence stop
(NaN, inf, or a loss that explodes while finite), DDP under ``torchrun`` (each process passes the
same model and data; ``batch_size`` stays the global batch), TensorBoard logs.

    model = MyNet()
    result = fit(model, (x_train, y_train), eps=0.1, step_size=0.025, steps=10, epochs=5, run="mine")
    result.last, result.best, result.history, result.model   # result.model is ``model``, trained

``train_data``: an ``(x, y)`` pair of tensors (x: N x C x H x W in [0, 1]; y: N integer labels),
or what :func:`wmrbench.evaluate` takes: a ``DataLoader`` (or any iterable) of ``(images,
labels)`` batches, or a map-style ``Dataset`` of ``(image, label)`` pairs, read through a
DataLoader. It is read once, in order, before the first epoch (a shuffling loader's order would
make the run depend on it: ``fit`` shuffles with its seed). Like ``train``, the training set is
then held as one tensor on the device (the GPU never waits for a loader), so it must fit in
memory; for data that does not, write the loop with :mod:`wmrbench.losses`. The number of
classes is what the model outputs.

The attack budget has no data set to come from: left out, ``eps``, ``step_size``, ``steps``,
``beta`` and ``alpha_train`` are the library's defaults (:mod:`wmrbench.core.defaults`: the paper's
CIFAR-10 TRADES setting, L-infinity eps 0.031, 10 steps of 0.007, beta 5; alpha_train 0, the
plain defense); ``step_size`` left out with another ``eps`` or ``steps`` keeps that walk's
reach (``steps * step_size / eps``). The optimizer is SGD (lr 0.1, momentum 0.9, weight decay 2e-4) with a
constant rate unless ``milestones`` are given. As in ``train``, the training attack starts at
x + 0.001 * N(0, I) (Algorithm 1) and the precision defaults to the device's
(:func:`wmrbench.core.presets.default_precision`).

The checkpoint has ``train``'s format and is read with ``weights_only=True``; its config
records ``dataset: "custom"`` (:data:`wmrbench.core.config.CUSTOM_DATASET`) and ``arch``: the
model's class name. wmrbench cannot load that data by name, so such a run is continued with this
function (``resume=True``), not with ``wmrbench train --resume``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from wmrbench.core import distributed
from wmrbench.core.attack_config import AttackConfig, Norm, Precision, Start
from wmrbench.attacks.inputs import check_model, check_value_ranges, probe
from wmrbench.core.config import CUSTOM_DATASET, Defense, EvalConfig, SelectBy, TrainConfig
from wmrbench.data import ImageSet
from wmrbench.data.reading import read_examples
from wmrbench.core.defaults import DEFAULTS, scaled_step_size
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import default_precision
from wmrbench.training.selection import validation_alphas
from wmrbench.training.checkpoint import run_dir
from wmrbench.training.loop import fit_sweep
from wmrbench.training.plan import check_before_work
from wmrbench.training.task import Task

DEFAULT_RUN = "custom"
# An (x, y) pair of tensors, a DataLoader or a Dataset of (image, label) pairs, or any iterable of
# (images, labels) batches: what wmrbench.evaluate takes.
TrainData = tuple[Tensor, Tensor] | DataLoader | Dataset | Iterable[Any]
_TRAIN = DEFAULTS.train_attack  # no data set named: the library's one rule


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` trained: ``last.pt``, ``best.pt`` (None without a held-out split), the history
    (one mapping per finished epoch, as in ``metrics.jsonl``) and the model with its trained weights.
    Printed, it is one line (the model's class, not its layers)."""

    last: Path
    best: Path | None
    history: list[dict[str, Any]]
    model: nn.Module

    def __repr__(self) -> str:
        epochs = f"{len(self.history)} epoch{'s' if len(self.history) != 1 else ''}"
        loss = f", last loss {self.history[-1]['loss']:.4f}" if self.history and "loss" in self.history[-1] else ""
        return (f"FitResult(last={str(self.last)!r}, best={str(self.best) if self.best else None!r}, "
                f"{epochs}{loss}, model={type(self.model).__name__})")


def free_run(checkpoint_dir: str | Path, resume: bool) -> str:
    """The run :func:`fit` uses when none is named: a fresh ``custom``, ``custom-2``, ``custom-3``,
    ... (the first without a ``last.pt``), so that running a script twice trains twice instead of
    stopping at the first run's checkpoint; with ``resume``, the last of them that has one."""
    def name(k: int) -> str:
        return DEFAULT_RUN if k == 1 else f"{DEFAULT_RUN}-{k}"

    k = 1
    while (Path(checkpoint_dir) / name(k) / "last.pt").exists():
        k += 1
    if not resume:
        return name(k)
    if k == 1:
        raise WmrbenchError(f"resume=True: no run to resume under {checkpoint_dir} ({DEFAULT_RUN}/last.pt is missing); "
                            f"name the run with run=...")
    return name(k - 1)


def fit(
    model: nn.Module,
    train_data: TrainData,
    *,
    defense: Defense | str = Defense.TRADES,
    alpha_train: float = DEFAULTS.alpha_train,
    eps: float = _TRAIN.eps,
    step_size: float | None = None,
    steps: int = _TRAIN.steps,
    norm: Norm | str = Norm.LINF,
    beta: float = DEFAULTS.beta,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 2e-4,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    augment: bool = False,
    run: str | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    resume: bool = False,
    stop_after_epochs: int | None = None,
    val_size: int = 0,
    val_data: TrainData | None = None,
    eval_every: int = 1,
    select_by: str = "A_rob",
    divergence_stop: bool = True,
    device: str = "auto",
    precision: Precision | str | None = None,
    seed: int = 0,
    log_every: int = 20,
    tensorboard: str | None = None,
    show_progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``train_data`` with ``defense`` and write ``<checkpoint_dir>/<run>/last.pt``
    every epoch.

    ``defense``: ``"trades"`` or ``"pgd"``, weighted ("+ours") when ``alpha_train`` > 0 (default
    0, the plain defense; the paper's "+ours" rows use 2 on CIFAR-10), or ``"mart"``, ``"gairat"``,
    ``"mail-at"``, ``"mail-trades"``, which bring their own weighting (``alpha_train`` stays 0).
    The training attack is PGD with ``steps`` steps of ``step_size`` in the ``norm`` ball of
    radius ``eps`` (``"linf"`` or ``"l2"``), intersected with [0, 1].

    ``run``: the folder under ``checkpoint_dir``. Left out, each call trains a fresh one
    (``custom``, then ``custom-2``, ...), so a script can be run again; ``resume=True`` then
    continues the newest. A named run that already has a ``last.pt`` is refused unless resumed.
    ``resume``: continue the run from its ``last.pt`` into ``model`` (only ``epochs``, ``device``
    and the other resumable settings may differ).
    ``val_size`` > 0 holds that many training examples out (chosen with the seed), or
    ``val_data`` (as ``train_data``; never your test set) is the held-out split; either is
    evaluated every ``eval_every`` epochs under the training attack's budget, keeping the best
    epoch by ``select_by`` (``A_rob``, ``A_sa@2``, ``A_tr@2``) as ``best.pt``. The checkpoint's
    ``val_size`` is then the held-out split's size.
    ``stop_after_epochs`` ends this call early (resume later). ``show_progress`` False prints
    nothing: no bars and no epoch lines (``history`` holds every epoch). A diverged run raises
    :class:`~wmrbench.core.errors.WmrbenchError` with one line; ``last.pt`` keeps the last good epoch.
    The run draws from torch's global generator with its own ``seed``; the caller's stream (the
    CPU's and the run's CUDA device's) is restored when ``fit`` returns.
    ``model`` is trained in place, moved to ``device`` and left there, and left in train mode; a
    parameter you froze (``requires_grad`` False) stays frozen and is not trained (docs/api.md).
    """
    if not isinstance(model, nn.Module):
        raise WmrbenchError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    data = as_image_set(train_data)
    held_out = None
    if val_data is not None:
        if val_size:
            raise WmrbenchError("give val_size (held out of train_data) or val_data, not both")
        held_out = as_image_set(val_data, "val_data")
        val_size = len(held_out)
    if step_size is None:  # keeps the default walk's reach for another eps or steps
        step_size = scaled_step_size(eps, steps, _TRAIN)
    if run is None:
        run = free_run(checkpoint_dir, resume)
    cfg = TrainConfig(
        run=run, dataset=CUSTOM_DATASET, arch=type(model).__name__, defense=defense,
        alpha_train=alpha_train, beta=beta, detach_weights=False, normalize_weights=False,
        # Algorithm 1 starts the training attack at x + 0.001 * N(0, I), as ``train`` does
        attack=AttackConfig(eps=eps, step_size=step_size, steps=steps, norm=norm, start=Start.NORMAL),
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        milestones=tuple(milestones), gamma=gamma, augment=augment, seed=seed, data_dir="",
        checkpoint_dir=str(checkpoint_dir), device=device, precision=precision or default_precision(device),
        log_every=log_every, eval_every=eval_every if val_size else 0, val_size=val_size, select_by=select_by,
        tensorboard=tensorboard, divergence_stop=divergence_stop,
    )
    task = own_task(model, data, held_out)
    check_before_work(cfg, task)
    # The run seeds torch's global generator (initial weights, dropout): the caller's own stream
    # is put back as it was afterwards (the CPU's and the run's CUDA device's).
    resolved = distributed.resolve_device(cfg.device)
    cuda = [resolved.index or 0] if resolved.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        swept = fit_sweep([cfg], resume=resume, stop_after_epochs=stop_after_epochs, show_progress=show_progress,
                          task=task, epoch_lines=show_progress)
    if swept.failures:
        raise WmrbenchError(swept.failures[cfg.run])
    result = swept.results[0]
    best = run_dir(cfg) / "best.pt"
    assert result.model is not None
    return FitResult(result.checkpoint, best if best.is_file() else None, result.history, result.model)


def as_image_set(train_data: TrainData, name: str = "train_data") -> ImageSet:
    """The data (``name`` in the messages) as one float32 N x C x H x W tensor in [0, 1] and int64
    labels, or one line saying what is wrong with it."""
    if isinstance(train_data, (tuple, list)) and len(train_data) == 2 and all(
        isinstance(t, Tensor) for t in train_data
    ):
        x, y = train_data
    else:
        # A DataLoader, a Dataset or an iterable of (images, labels) batches: read once, in
        # batches, exactly as wmrbench.evaluate reads them (a Dataset through a DataLoader).
        x, y = read_examples(train_data, name=name)
    if x.dim() == 3:  # N x H x W: one channel
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise WmrbenchError(f"{name}: images must be N x C x H x W; got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise WmrbenchError(f"{name}: {len(x)} images need {len(x)} labels in one dimension; got shape {tuple(y.shape)}")
    if x.is_floating_point() is False or y.is_floating_point():
        raise WmrbenchError(f"{name}: images must be floating point in [0, 1] and labels integers")
    x = x.detach().float().cpu().contiguous()
    if len(x) == 0:
        raise WmrbenchError(f"{name} is empty")
    low, high = float(x.min()), float(x.max())
    if not (0.0 <= low and high <= 1.0):  # the attack clips to [0, 1]: other ranges would be attacked wrongly
        raise WmrbenchError(f"{name}: images must lie in [0, 1] (the attack's box); got values in [{low:.10g}, {high:.10g}]")
    return ImageSet(x, y.detach().long().cpu().contiguous())


def own_task(model: nn.Module, data: ImageSet, held_out: ImageSet | None = None) -> Task:
    """The loop's :class:`~wmrbench.training.task.Task` for a given model and data: the model is
    ``model`` itself (trained in place; ``resume`` loads last.pt into it), the split is ``data``,
    the number of classes is the model's output width, and held-out evaluation attacks within
    the training attack's budget (there is no data set's evaluation attack to take)."""
    classes = _output_width(model, data)
    for name, split in (("train_data", data), ("val_data", held_out)):
        if split is not None and (int(split.y.min()) < 0 or int(split.y.max()) >= classes):
            raise WmrbenchError(f"{name}: labels must be 0..{classes - 1} (the model has {classes} outputs); "
                                f"got {int(split.y.min())}..{int(split.y.max())}")
        if split is not None and split.x.shape[1:] != data.x.shape[1:]:
            raise WmrbenchError(f"val_data: images of shape {tuple(split.x.shape[1:])}, train_data's are "
                                f"{tuple(data.x.shape[1:])}")

    def validation(cfg: TrainConfig, select: SelectBy, n: int) -> EvalConfig:
        return EvalConfig(
            dataset=CUSTOM_DATASET, attack=cfg.attack, alpha_test=validation_alphas(cfg, select), n_examples=None,
            batch_size=min(256, n), seed=cfg.seed, data_dir="", device=cfg.device, precision=Precision.FP32,
            results_dir="", run=f"{cfg.run}-val",
        )

    return Task(classes, lambda cfg: model, lambda cfg: data, lambda cfg: None, validation, held_out)


def _output_width(model: nn.Module, data: ImageSet) -> int:
    """The model's number of outputs, from one forward pass of one training image (one line if
    the model cannot take the data)."""
    parameter = next(iter(model.parameters()), None)
    where = parameter.device if parameter is not None else torch.device("cpu")
    check_model(model)
    first = data.x[:1].to(where)
    with torch.random.fork_rng(devices=[]):
        # the attacks' own probe and checks: a tuple, 1 output, or NaN outputs before any step
        # (blamed on the model, not on the learning rate)
        logits = probe(model, first, "the model")
    check_value_ranges(first, None, None, logits=logits, what="train_data", model="the model")
    return int(logits.shape[1])
