"""Held-out evaluation during training, and the best checkpoint (``--eval-every``, ``--val-size``,
``--select-by``).

Adversarial training overfits (Rice, Wong and Kolter 2020): robust accuracy on unseen data peaks
and then falls while training goes on, so papers report the best checkpoint. It must be chosen
on data the final numbers do not use: a held-out split carved from the TRAINING set with the
run's seed, never the test set. Every ``eval_every`` epochs the model is evaluated there with the
data set's evaluation attack (the same pipeline as ``evaluate``), and ``best.pt`` is kept beside
``last.pt`` when the selected metric improves.
"""

from __future__ import annotations

import torch
from torch import nn

from wmrbench.core.config import EvalConfig, SelectBy, TrainConfig
from wmrbench.data import ImageSet
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.evaluation import evaluate_model
from wmrbench.results.metrics import compute_metrics
from wmrbench.core.presets import DEFAULT_ALPHA_TEST, eval_config
from wmrbench.results.records import Metrics

def carve_validation(train: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(the rest of the training split, a held-out split of ``val_size``), chosen by the seed."""
    if not 0 < val_size < len(train):
        raise WmrbenchError(f"{setting('val_size')} must be between 1 and {len(train) - 1} (the training split has {len(train)})")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).to(train.y.device)
    held, rest = order[:val_size].sort().values, order[val_size:].sort().values
    return ImageSet(train.x[rest], train.y[rest]), ImageSet(train.x[held], train.y[held])


def validation_alphas(cfg: TrainConfig, select: SelectBy) -> tuple[float, ...]:
    """The alphas logged on the held-out split: the paper's alpha_test, the run's alpha_train and
    the selection's."""
    extra = [a for a in (cfg.alpha_train, select.alpha) if a is not None and a > 0]
    return tuple(dict.fromkeys([*DEFAULT_ALPHA_TEST, *extra]))


def validate(model: nn.Module, val: ImageSet, cfg: TrainConfig, select: SelectBy, eval_cfg: EvalConfig | None = None) -> Metrics:
    """The model's metrics on the held-out split, under the data set's evaluation attack (or
    ``eval_cfg``'s, for data known by no name)."""
    if eval_cfg is None:
        eval_cfg = eval_config(cfg.dataset, f"{cfg.run}-val", alpha_test=validation_alphas(cfg, select),
                               device=cfg.device, seed=cfg.seed, batch_size=min(256, len(val)))
    was_training = model.training
    try:
        return compute_metrics(evaluate_model(model, val, eval_cfg, show_progress=False))
    finally:
        model.train(was_training)


def selected_value(metrics: Metrics, select: SelectBy) -> float:
    if select.alpha is None:
        return metrics.A_rob
    return getattr(metrics, select.metric)[select.alpha]
