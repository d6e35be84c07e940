"""``rerun``: train again exactly as a checkpoint records, and say whether it came out the same."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from wmrbench.core.config import train_config_from_dict
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.training.checkpoint import TrainResult, read_training_checkpoint
from wmrbench.training.loop import fit


@dataclass
class TrainRerun:
    original: Path
    result: TrainResult
    differences: list[str]  # empty when every weight and every epoch's statistics are the same


def rerun_training(checkpoint: str | Path, run: str | None = None, show_progress: bool = True) -> TrainRerun:
    """Train again exactly as a checkpoint records (config, seed, as many epochs as it had done),
    into a new run beside it, and say whether the weights and the history are the same."""
    checkpoint = Path(checkpoint)
    saved = read_training_checkpoint(checkpoint, "rerun")
    cfg = train_config_from_dict(saved["config"])
    run = run or f"{cfg.run}-rerun"
    if run == cfg.run:
        raise WmrbenchError(f"{setting('run', run)} is the run being rerun: give the rerun another name")
    again = dataclasses.replace(cfg, run=run, checkpoint_dir=str(checkpoint.parent.parent))
    result = fit(again, stop_after_epochs=int(saved["epoch"]), show_progress=show_progress)
    redone = read_checkpoint(result.checkpoint)
    differences = [f"weights {key} differ" for key, value in saved["model"].items()
                   if key not in redone["model"] or not torch.equal(value, redone["model"][key])]
    for old, new in zip(saved["history"], redone["history"]):
        changed = [k for k in ("loss", "adv_accuracy", "mean_weight", "lr") if old.get(k) != new.get(k)]
        if changed:
            differences.append(f"epoch {old['epoch']}: {', '.join(changed)} differ")
    return TrainRerun(checkpoint, result, differences)
