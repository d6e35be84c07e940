"""A training run's config before any work: the preset with the options on top, or on
``resume`` the saved config with the options on top (only resumable settings may differ), and
what can be known wrong before any work (the device, the architecture against the data, the
defense's settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wmrbench.core import distributed
from wmrbench.core import resume as resume_rule
from wmrbench.core.config import DatasetName, Defense, TrainConfig, given_settings, train_config_from_dict
from wmrbench.defenses import check_spec, get_defense
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.models import model_spec
from wmrbench.core.presets import DEFAULT_DATASET, DEFAULT_DEFENSE, train_config
from wmrbench.training.checkpoint import read_training_checkpoint, run_dir
from wmrbench.training.task import Task, named_task


def config_for_run(
    dataset: DatasetName | str | None, defense: Defense | str | None, options: Mapping[str, Any], resume: bool,
) -> TrainConfig:
    """The run's config: the preset with the options on top, or (``resume``) the saved config
    with the options on top, where only resumable settings may differ (:func:`merge_resume`)."""
    if options.get("arch") is not None:
        model_spec(options["arch"])  # unknown arch -> one line, before any work
    fresh = train_config(DEFAULT_DATASET if dataset is None else dataset, DEFAULT_DEFENSE if defense is None else defense, **given_settings(options))
    if not resume:
        distributed.check_divides(fresh.batch_size, distributed.env_world_size())
        check_before_work(fresh)
        return fresh
    saved = train_config_from_dict(read_training_checkpoint(run_dir(fresh) / "last.pt")["config"])
    # The folder read is the folder written: a copied run folder continues as its own run.
    resumed = merge_resume(saved, resume_rule.requested(saved, options, run=fresh.run, dataset=dataset, defense=defense))
    distributed.check_divides(resumed.batch_size, distributed.env_world_size())
    check_before_work(resumed)
    return resumed


def check_before_work(cfg: TrainConfig, task: Task | None = None) -> None:
    """What can be known wrong before any work: the device, settings the defense cannot take,
    and the model against the data (``task``; default: the config's names)."""
    distributed.resolve_device(cfg.device)
    check_spec(get_defense(cfg.defense), cfg)
    (task or named_task(cfg)).check(cfg)


def merge_resume(saved: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """The saved config, with the requested values of the resumable settings; any other
    setting that differs is refused by name (:mod:`wmrbench.core.resume`, evaluation's rule too)."""
    changed = resume_rule.changed(saved, requested)
    if changed:
        raise WmrbenchError(
            f"{setting('resume', True)}: run {saved.run!r} was trained with other settings "
            f"({', '.join(setting(n) for n in changed)}); drop those options or start a new {setting('run')}"
        )
    return resume_rule.merged(saved, requested)
