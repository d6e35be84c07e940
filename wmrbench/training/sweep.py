"""``train --alpha-train 0,0.5,2``: one run per alpha_train value, trained side by side in one process.

Each value gets its own run, named predictably: with ``--run NAME`` the runs are ``NAME-a0``,
``NAME-a0.5``, ``NAME-a2``; without it each run has its usual default name,
``DATASET-DEFENSE-a<alpha>``. Every run has its own folder, lock, ``last.pt`` and
``metrics.jsonl`` (and ``--tensorboard DIR`` writes ``DIR/<run>``), so each can be resumed,
evaluated or rerun on its own; ``--resume`` resumes them all, and a run that had not yet saved an
epoch starts from scratch.

``train --seeds 0,1,2``: one run per seed (and per alpha_train), named ``<name>-s<seed>``
(``digits-trades-a2-s1``, ``NAME-s1``, or in a sweep ``NAME-a2-s1``). Each is the run a plain
``train --seed 1 --run digits-trades-a2-s1`` trains alone, so a launcher may spread them over
processes. The seed decides the data order, so the runs of one seed form one sweep as above, and
the seeds' sweeps follow one another (:func:`by_seed`).

The runs share every setting but alpha_train, hence the same data order and augmentation:
:func:`wmrbench.training.loop.fit_sweep` draws and augments each batch once and lets every run take its
step on it with its own random streams, so each run is bit for bit the run trained alone (CPU).
``--stack on`` trains them as one stacked model instead (:mod:`wmrbench.training.stacked`, whose
:func:`~wmrbench.training.stacked.fit_runs` chooses between the two): one attack and one forward/backward
for all runs per step, the same folders and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmrbench.core import distributed
from wmrbench.core.checks import parse_enum
from wmrbench.core.checks import check_seed
from wmrbench.core.config import DatasetName, Defense, TrainConfig, given_settings, number_key
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.presets import DEFAULT_DATASET, DEFAULT_DEFENSE, default_train_run, train_config
from wmrbench.training.checkpoint import TrainResult, run_dir
from wmrbench.training.plan import config_for_run

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


def check_sweep(cfgs: Sequence[TrainConfig], seeds_may_differ: bool = False) -> None:
    """Several runs may train side by side only if they share the data settings (one line naming
    the first that differs) and write different folders. ``seeds_may_differ``: the stacked epoch
    draws each run's own batches, so only the seed may differ (not with a held-out split, which
    the seed carves)."""
    folders = [run_dir(cfg).resolve() for cfg in cfgs]
    for i, folder in enumerate(folders):
        if folder in folders[:i]:
            raise WmrbenchError(f"two runs of the sweep write the same folder {run_dir(cfgs[i])}: give each its own {setting('run')}")
    shared = [n for n in SHARED_BY_SWEEP if not (seeds_may_differ and n == "seed")]
    for cfg in cfgs[1:]:
        differ = [name for name in shared if getattr(cfg, name) != getattr(cfgs[0], name)]
        if differ:
            raise WmrbenchError(
                f"runs {cfgs[0].run!r} and {cfg.run!r} cannot train side by side: they differ in "
                f"{', '.join(setting(n) for n in differ)}; the runs of a sweep share the data settings"
            )
        if cfg.seed != cfgs[0].seed and cfgs[0].val_size:
            raise WmrbenchError(f"runs {cfgs[0].run!r} and {cfg.run!r} carve their held-out split ({setting('val_size')}) "
                                "with their own seeds, so they cannot train side by side")
    if len(cfgs) > 1 and distributed.env_world_size() > 1:
        raise WmrbenchError(f"a sweep (several {setting('alpha_train')} values) trains in one process: run it without torchrun, "
                            "or train one alpha_train per torchrun job")


def sweep_run_name(run: str | None, dataset: DatasetName, defense: Defense, alpha: float) -> str:
    """``RUN-a<alpha>`` when a run name was given, else the run's default name."""
    if run is None:
        return default_train_run(dataset, defense, alpha)
    return f"{run}-a{number_key(alpha)}"  # 0.1 and 0.10000000001 never share a folder


def seed_run_name(name: str, seed: int) -> str:
    """``<name>-s<seed>``: one training seed's run."""
    return f"{name}-s{seed}"


def check_train_seeds(seeds: Sequence[int], seed: int | None) -> tuple[int, ...]:
    """``--seeds``: distinct seeds, and not beside ``--seed`` (one line otherwise)."""
    if seed is not None:
        raise WmrbenchError(f"{setting('seed')} and {setting('seeds')} both given: {setting('seeds')} trains one run per seed; give one of them")
    checked = tuple(check_seed(s, "seeds") for s in seeds)
    if not checked:
        raise WmrbenchError(f"{setting('seeds')} needs at least one seed, e.g. 0,1,2")
    if len(set(checked)) != len(checked):
        raise WmrbenchError(f"{setting('seeds', ','.join(map(str, checked)))}: a seed is repeated; each seed is one run")
    return checked


def by_seed(cfgs: Sequence[TrainConfig]) -> list[list[TrainConfig]]:
    """The runs grouped by seed, in order: each group trains as one sweep (it shares a data order)."""
    groups: dict[int, list[TrainConfig]] = {}
    for cfg in cfgs:
        groups.setdefault(cfg.seed, []).append(cfg)
    return list(groups.values())


def run_options(
    dataset: DatasetName | str | None, defense: Defense | str | None, options: Mapping[str, Any],
    alphas: Sequence[float | None], seeds: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Each run's own options, one per alpha_train (``None``: the preset's) and per seed
    (``seeds``; None: the options' seed), named as ``train`` names them: ``RUN-aALPHA`` for
    several alphas, ``...-sSEED`` per seed. The sweep here and the launcher's jobs both build
    their runs from these, so a run has one name however it is trained."""
    data = parse_enum(DatasetName, DEFAULT_DATASET if dataset is None else dataset, "dataset")
    chosen = parse_enum(Defense, DEFAULT_DEFENSE if defense is None else defense, "defense")
    out = []
    for seed in seeds if seeds is not None else (None,):
        for alpha in alphas:
            own = {**options, "alpha_train": alpha if alpha is not None else options.get("alpha_train")}
            if seed is not None:
                own["seed"] = seed
            if len(alphas) > 1:
                name = sweep_run_name(options.get("run"), data, chosen, alpha if alpha is not None else 0.0)
            else:  # one alpha: the run's own name, or its default name (the preset's alpha_train in it)
                name = options.get("run") or train_config(data, chosen, **given_settings({**own, "run": None})).run
            if seed is not None:
                name = seed_run_name(name, seed)
            board = str(Path(options["tensorboard"]) / name) if options.get("tensorboard") is not None else None
            out.append({**own, "run": name, "tensorboard": board})
    return out


def sweep_configs(
    dataset: DatasetName | str | None, defense: Defense | str | None, options: Mapping[str, Any],
    alphas: Sequence[float | None], resume: bool, seeds: Sequence[int] | None = None,
) -> list[TrainConfig]:
    """One config per run of :func:`run_options`, each built as ``train`` builds a single run's
    (the preset, or with ``resume`` the saved config, with the options on top); ``resume`` reads
    the runs that have a checkpoint and starts the others afresh, but at least one must have one."""
    cfgs, missing = [], []
    for own in run_options(dataset, defense, options, alphas, seeds):
        probe = config_for_run(dataset, defense, own, resume=False)
        has_checkpoint = (run_dir(probe) / "last.pt").is_file()
        if resume and not has_checkpoint:
            missing.append(run_dir(probe) / "last.pt")
        cfgs.append(config_for_run(dataset, defense, own, resume=True) if resume and has_checkpoint else probe)
    if resume and len(missing) == len(cfgs):
        raise WmrbenchError(f"{setting('resume', True)}: no checkpoint at {missing[0]} nor at any other run of the sweep")
    folders = [run_dir(cfg).resolve() for cfg in cfgs]
    for i, folder in enumerate(folders):
        if folder in folders[:i]:
            raise WmrbenchError(f"two runs of the sweep write the same folder {run_dir(cfgs[i])}: give each its own {setting('run')}")
    for group in by_seed(cfgs):
        check_sweep(group)
    return cfgs
