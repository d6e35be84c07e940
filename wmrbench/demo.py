"""The paper's loop end to end on the embedded digits data: train the baseline and "+ours" for
one defense, evaluate both under uniform and non-uniform attacks, return their summaries.

Re-running the demo reuses finished runs (and resumes unfinished ones), so it is idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wmrbench.config import DatasetName, Defense, build_train_config, preset_for
from wmrbench.evaluation import evaluate_checkpoint
from wmrbench.models.sources import read_checkpoint
from wmrbench.training import fit


def run_demo(
    defense: Defense = Defense.TRADES, alpha_train: float | None = None,
    alpha_test: tuple[float, ...] = (1.0, 1.5, 2.0), checkpoint_dir: str = "checkpoints",
    results_dir: str = "results", device: str = "auto", seed: int = 0, show_progress: bool = True,
) -> list[dict[str, Any]]:
    alpha_ours = preset_for(DatasetName.DIGITS, defense).alpha_train if alpha_train is None else alpha_train
    summaries = []
    for alpha in (0.0, alpha_ours):
        cfg = build_train_config(
            DatasetName.DIGITS, defense, run=f"demo-{defense.value}-a{alpha:g}", alpha_train=alpha,
            checkpoint_dir=checkpoint_dir, device=device, seed=seed,
        )
        last = Path(checkpoint_dir) / cfg.run / "last.pt"
        done = last.is_file() and int(read_checkpoint(last).get("epoch", 0)) >= cfg.epochs
        if not done:
            fit(cfg, resume=last.is_file(), show_progress=show_progress)
        result = evaluate_checkpoint(
            str(last), None, None, cfg.run,
            {"alpha_test": alpha_test, "results_dir": results_dir, "device": device, "seed": seed},
            show_progress=show_progress,
        )
        summaries.append(result.summary)
    return summaries
