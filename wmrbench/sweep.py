"""``train --alpha-train 0,0.5,2``: one run per alpha_train value, trained side by side in one process.

Each value gets its own run, named predictably: with ``--run NAME`` the runs are ``NAME-a0``,
``NAME-a0.5``, ``NAME-a2``; without it each run has its usual default name,
``DATASET-DEFENSE-a<alpha>``. Every run has its own folder, lock, ``last.pt`` and
``metrics.jsonl`` (and ``--tensorboard DIR`` writes ``DIR/<run>``), so each can be resumed,
evaluated or rerun on its own; ``--resume`` resumes them all, and a run that had not yet saved an
epoch starts from scratch.

The runs share every setting but alpha_train, hence the same data order and augmentation:
:func:`wmrbench.training.fit_sweep` draws and augments each batch once and lets every run take its
step on it with its own random streams, so each run is bit for bit the run trained alone (CPU).
``--stack on`` trains them as one stacked model instead (:mod:`wmrbench.stacked`): one attack and
one forward/backward for all runs per step, the same folders and checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from wmrbench.config import DatasetName, Defense, TrainConfig, TrainOptions, number_key, parse_enum
from wmrbench.errors import WmrbenchError
from wmrbench.presets import DEFAULT_DATASET, DEFAULT_DEFENSE, default_train_run
from wmrbench.stacked import Stack, fit_stacked, use_stack
from wmrbench.training import SweepResult, check_sweep, config_for_run, fit_sweep, run_dir

# Off by default: on the CPU stacking was measured no faster (benchmarks/reference/cpu-quick/stack.json),
# and its GPU speed is still to be measured (docs/reproduction.md).
DEFAULT_STACK = Stack.OFF


def sweep_run_name(run: str | None, dataset: DatasetName, defense: Defense, alpha: float) -> str:
    """``RUN-a<alpha>`` when a run name was given, else the run's default name."""
    if run is None:
        return default_train_run(dataset, defense, alpha)
    return f"{run}-a{number_key(alpha)}"  # 0.1 and 0.10000000001 never share a folder


def sweep_configs(
    dataset: DatasetName | str | None, defense: Defense | str | None, options: TrainOptions,
    alphas: Sequence[float], resume: bool,
) -> list[TrainConfig]:
    """One config per alpha_train, each built as ``train`` builds a single run's (the preset, or
    with ``resume`` the saved config, with the options on top); ``resume`` reads the runs that
    have a checkpoint and starts the others afresh, but at least one must have one."""
    data = parse_enum(DatasetName, dataset or DEFAULT_DATASET, "dataset")
    chosen = parse_enum(Defense, defense or DEFAULT_DEFENSE, "defense")
    cfgs, missing = [], []
    for alpha in alphas:
        name = sweep_run_name(options.run, data, chosen, alpha)
        board = str(Path(options.tensorboard) / name) if options.tensorboard is not None else None
        own = dataclasses.replace(options, alpha_train=alpha, run=name, tensorboard=board)
        probe = config_for_run(dataset, defense, own, resume=False)
        has_checkpoint = (run_dir(probe) / "last.pt").is_file()
        if resume and not has_checkpoint:
            missing.append(run_dir(probe) / "last.pt")
        cfgs.append(config_for_run(dataset, defense, own, resume=True) if resume and has_checkpoint else probe)
    if resume and len(missing) == len(cfgs):
        raise WmrbenchError(f"--resume: no checkpoint at {missing[0]} nor at any other run of the sweep")
    check_sweep(cfgs)
    return cfgs



def fit_runs(
    cfgs: Sequence[TrainConfig], *, stack: Stack | str = DEFAULT_STACK, resume: bool = False, missing_ok: bool = False,
    stop_after_epochs: int | None = None, show_progress: bool = True,
) -> SweepResult:
    """Train the runs of a sweep: stacked (:func:`wmrbench.stacked.fit_stacked`) or taking turns
    (:func:`wmrbench.training.fit_sweep`, ``--stack off``), as ``stack`` and the runs allow
    (:func:`wmrbench.stacked.use_stack`). Both write the same folders and checkpoints."""
    train = fit_stacked if use_stack(stack, cfgs) else fit_sweep
    return train(cfgs, resume=resume, missing_ok=missing_ok, stop_after_epochs=stop_after_epochs,
                 show_progress=show_progress)
