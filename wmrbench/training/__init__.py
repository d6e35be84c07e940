"""Adversarial training (Algorithm 1 of the paper), one job per module:

* :mod:`~wmrbench.training.step`: one step (attack, then the defense's loss) and one epoch of it;
* :mod:`~wmrbench.training.streams`: the epoch's random streams, seeded from (seed, epoch, rank);
* :mod:`~wmrbench.training.loop`: the epochs of one run or a sweep, held-out selection, stops;
* :mod:`~wmrbench.training.task`: what the loop trains (named data and architecture, or given);
* :mod:`~wmrbench.training.checkpoint`: the last.pt / best.pt format: save, read, restore;
* :mod:`~wmrbench.training.plan`: a run's config before any work (preset, resume, checks);
* :mod:`~wmrbench.training.divergence`: when a run has diverged, and the line that says so;
* :mod:`~wmrbench.training.sweep`: several alpha_train values side by side;
* :mod:`~wmrbench.training.rerun`: train again as a checkpoint records, and compare;
* :mod:`~wmrbench.training.api`: ``fit(model, data, ...)`` for a user's own model and data.

The names below are those other modules use; ``from wmrbench.training import fit`` keeps working.
The weighted objectives (PGD-AT, TRADES) are the defenses' losses: :mod:`wmrbench.defenses.objectives`.
"""

from wmrbench.training.checkpoint import TrainResult, run_dir, with_timing
from wmrbench.training.divergence import Diverged
from wmrbench.training.loop import fit, fit_sweep
from wmrbench.training.plan import check_before_work, config_for_run, merge_resume
from wmrbench.training.rerun import TrainRerun, rerun_training
from wmrbench.training.step import train_step
from wmrbench.training.streams import ATTACK, AUGMENT, DROPOUT, SHUFFLE, GlobalRng, epoch_generators, stream_seed
from wmrbench.training.sweep import (
    SHARED_BY_SWEEP, SweepResult, by_seed, check_sweep, check_train_seeds, run_options, seed_run_name, sweep_configs, sweep_run_name,
)

__all__ = [
    "ATTACK", "AUGMENT", "DROPOUT", "SHUFFLE", "SHARED_BY_SWEEP", "Diverged", "GlobalRng", "SweepResult",
    "TrainRerun", "TrainResult", "by_seed", "check_before_work", "check_sweep", "check_train_seeds", "config_for_run", "epoch_generators", "fit",
    "fit_sweep", "merge_resume", "rerun_training", "run_dir", "run_options", "seed_run_name", "stream_seed", "sweep_configs", "sweep_run_name",
    "train_step", "with_timing",
]
