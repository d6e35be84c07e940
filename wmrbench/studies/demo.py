"""The paper's loop end to end on the embedded digits data: train the baseline and "+ours" for
one defense, evaluate both under uniform and non-uniform attacks, return their summaries.

Re-running the demo reuses finished runs (and resumes unfinished ones), so it is idempotent. Its
runs and evaluations are planned as the reproductions' are (:mod:`wmrbench.studies.planner`).
"""

from __future__ import annotations

from pathlib import Path

from wmrbench.core.config import DatasetName, Defense, number_key
from wmrbench.defenses import get_defense
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.studies.planner import Plan, evaluate_planned, planned_eval
from wmrbench.core.presets import (
    DEFAULT_ALPHA_TEST, DEFAULT_CHECKPOINT_DIR, DEFAULT_DEVICE, DEFAULT_RESULTS_DIR, DEFAULT_SEED, preset_for,
    train_config,
)
from wmrbench.results.records import Summary
from wmrbench.training import fit


def run_demo(
    defense: Defense = Defense.TRADES, alpha_train: float | None = None,
    alpha_test: tuple[float, ...] = DEFAULT_ALPHA_TEST, checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR,
    results_dir: str = DEFAULT_RESULTS_DIR, device: str = DEFAULT_DEVICE, seed: int = DEFAULT_SEED,
    show_progress: bool = True,
) -> list[Summary]:
    if not get_defense(defense).alpha_weighted:  # the demo is a defense with and without the paper's weight
        raise WmrbenchError(f"the demo trains {setting('defense')} pgd or trades with and without the exp(-alpha * margin) "
                            f"weight ('+ours'); {setting('defense', defense.value)} brings its own weighting: train it with "
                            f"`wmrbench train`, or compare the whole family with `wmrbench reproduce family`")
    alpha_ours = preset_for(DatasetName.DIGITS, defense).alpha_train if alpha_train is None else alpha_train
    if not alpha_ours > 0:  # alpha_train 0 is the baseline itself: the demo would train and score it twice
        raise WmrbenchError(f"{setting('alpha_train', f'{alpha_ours:g}')}: '+ours' needs a value above 0 (0 is the baseline "
                            f"the demo trains beside it); give e.g. {setting('alpha_train', 2)}, or leave it out for the preset's")
    runs = tuple(train_config(
        DatasetName.DIGITS, defense, run=f"demo-{defense.value}-a{number_key(alpha)}", alpha_train=alpha,
        checkpoint_dir=checkpoint_dir, device=device, seed=seed,
    ) for alpha in (0.0, alpha_ours))
    options = dict(alpha_test=alpha_test, results_dir=results_dir, device=device, seed=seed)
    plan = Plan(Path(results_dir), runs, tuple(planned_eval(run, run.run, DatasetName.DIGITS, options) for run in runs))
    summaries = []
    for planned in plan.evals:
        cfg, last = planned.model, planned.checkpoint
        done = last.is_file() and int(read_checkpoint(last).get("epoch", 0)) >= cfg.epochs
        if not done:
            fit(cfg, resume=last.is_file(), show_progress=show_progress, epoch_lines=show_progress)
        # The demo's own results: a rerun replaces them (with the same numbers).
        summaries.append(evaluate_planned(planned, lambda line: None, show_progress, replace=True)[0])
    return summaries
