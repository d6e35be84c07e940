"""What a training loop trains: the data and how to build the model, given rather than named.

The loop (:mod:`wmrbench.training.loop`) is the same for a run named by its config (a data set
of :mod:`wmrbench.data` and an architecture of :mod:`wmrbench.models`: :func:`named_task`) and for
a user's own model and data (:func:`wmrbench.training.api.fit`, which builds its own Task). A
Task answers the questions the loop would otherwise answer from names: how many classes, a fresh model,
the training split, whether the model takes the data, and the held-out evaluation's config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from wmrbench.core.config import CUSTOM_DATASET, EvalConfig, SelectBy, TrainConfig
from wmrbench.data import ImageSet, dataset_spec, load_split
from wmrbench.core.errors import WmrbenchError, first_line, setting
from wmrbench.models import create_model


@dataclass(frozen=True)
class Task:
    classes: int
    # A model on the CPU for this config; the loop seeds torch's global generator with cfg.seed
    # first, so a model built here draws its initial weights from the seed.
    new_model: Callable[[TrainConfig], nn.Module]
    # The whole training split (the loop moves it to the device once and carves val_size from it).
    training_split: Callable[[TrainConfig], ImageSet]
    # One line before any work when the model cannot take the data (raises WmrbenchError).
    check: Callable[[TrainConfig], None]
    # The held-out evaluation's config for n examples; None: the data set's evaluation attack
    # (selection.validate).
    validation: Callable[[TrainConfig, SelectBy, int], EvalConfig] | None = None
    # A held-out split given apart from the training split (its val_size examples); None: carve
    # val_size examples from the training split with the seed.
    held_out: ImageSet | None = None


def named_task(cfg: TrainConfig) -> Task:
    """The task a config names: ``cfg.dataset`` from :mod:`wmrbench.data`, ``cfg.arch`` from
    :mod:`wmrbench.models`, the data set's evaluation attack for the held-out split."""
    if cfg.dataset == CUSTOM_DATASET:  # a checkpoint of wmrbench.training.api.fit: its data has no name
        raise WmrbenchError(f"run {cfg.run!r} trained on the user's own data ({CUSTOM_DATASET}), which wmrbench cannot "
                            "load by name: continue or rerun it with wmrbench.training.api.fit(model, data, ...)")
    info = dataset_spec(cfg.dataset).info

    def new_model(cfg: TrainConfig) -> nn.Module:
        return create_model(cfg.arch, info.num_classes, info.in_channels)

    def training_split(cfg: TrainConfig) -> ImageSet:
        return load_split(cfg.dataset, cfg.data_dir, train=True, download=cfg.download,
                          verify_checksums=cfg.verify_checksums)

    return Task(info.num_classes, new_model, training_split, check_arch_fits)


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
                f"{setting('arch', cfg.arch)} cannot take {cfg.dataset.value} inputs of shape {shape}: {first_line(exc)}"
            ) from None
    if tuple(logits.shape) != (1, info.num_classes):
        raise WmrbenchError(
            f"{setting('arch', cfg.arch)} gives outputs of shape {tuple(logits.shape[1:])} on {cfg.dataset.value}, "
            f"which has {info.num_classes} classes"
        )
