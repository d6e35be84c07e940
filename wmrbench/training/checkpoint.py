"""The training checkpoint: ``<checkpoint_dir>/<run>/last.pt`` (and ``best.pt``), and what it holds.

A checkpoint is one torch file of plain values and tensors (read with ``weights_only=True``):
``format``, ``config`` (the TrainConfig as JSON values), ``epoch`` (finished), ``model``,
``optimizer`` and ``scheduler`` state, ``history`` (one mapping per epoch) and ``versions``. It
is written atomically once per epoch, with ``metrics.jsonl`` rebuilt from its history, so a run
killed at any moment resumes from its last finished epoch as if it had never stopped.

The file holds only what the training computed, never wall-clock time: two runs of one config
(inline, as a local or SLURM job, or interrupted and resumed) write the same bytes on the CPU. Each
epoch's ``seconds`` lives in ``timing.jsonl`` beside it (one line per epoch) and is merged back into
the history a run holds in memory and into ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wmrbench.core.config import TrainConfig, to_jsonable, train_config_from_dict
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.io import atomic_torch_save, atomic_write_text
from wmrbench.models.checkpoint import CHECKPOINT_FORMAT, load_state_into, read_checkpoint
from wmrbench.core.runtime import provenance


@dataclass
class TrainResult:
    checkpoint: Path  # last.pt
    history: list[dict[str, Any]]
    # the trained module itself (its weights are last.pt's; under DDP it is this rank's copy)
    model: nn.Module | None = field(default=None, repr=False, compare=False)


# The history keys that are measured, not computed: they differ between identical runs.
TIMING_KEYS = ("seconds",)
TIMING_FILE = "timing.jsonl"


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.checkpoint_dir) / cfg.run


def with_timing(history: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """The history with each epoch's ``seconds`` from ``folder/timing.jsonl`` where the epoch lacks
    it. A checkpoint from before the sidecar holds its seconds itself and is returned as it is; an
    epoch the sidecar does not name (lost to a kill between the writes, or deleted) has no seconds,
    and a line for an epoch the history lacks is ignored."""
    path = folder / TIMING_FILE
    if not path.is_file():
        return list(history)
    timing: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            timing[int(entry["epoch"])] = {k: entry[k] for k in TIMING_KEYS if k in entry}
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line costs that epoch's time only, never the run
    return [{**h, **{k: v for k, v in timing.get(int(h["epoch"]), {}).items() if k not in h}} for h in history]


def read_training_checkpoint(last: Path, purpose: str | None = None) -> dict[str, Any]:
    """A wmrbench training checkpoint, or one line that starts with what it is read for
    (``purpose``; default ``--resume``), so the message names what the user asked for."""
    purpose = purpose or setting("resume", True)
    if not last.is_file():
        raise WmrbenchError(f"{purpose}: no checkpoint at {last}")
    saved = read_checkpoint(last)
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise WmrbenchError(f"{purpose}: {last} is not a wmrbench training checkpoint")
    try:
        train_config_from_dict(saved.get("config"))
    except WmrbenchError as exc:
        raise WmrbenchError(f"{purpose}: {last} records a config this version cannot use ({exc})") from None
    return saved


def restore(
    saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR,
) -> tuple[list[dict[str, Any]], int]:
    """Load a checkpoint's state; return its history (without the seconds of timing.jsonl: see
    :func:`with_timing`) and the number of finished epochs.

    Every rank reads the same file (multi-node: a shared --checkpoint-dir); nothing in it
    depends on the number of processes, so any world size can continue any run.
    """
    # Another architecture than the run's (fit(resume=True) with another model) is one line
    # naming the mismatched weights, not load_state_dict's traceback.
    load_state_into(model, saved["model"], "the run's last.pt (resume continues into the architecture it was trained with)")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return list(saved["history"]), int(saved["epoch"])


def save(
    path: Path, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.MultiStepLR, epoch: int, history: list[dict[str, Any]],
    best: bool = False,
) -> None:
    """last.pt (and best.pt, the same checkpoint, when this epoch is the best held-out one), and
    timing.jsonl and metrics.jsonl beside them."""
    computed = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]
    checkpoint = canonical({
        "format": CHECKPOINT_FORMAT,
        "config": to_jsonable(cfg),
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": computed,
        "versions": provenance(),
    })
    atomic_torch_save(path, checkpoint)
    if best:
        atomic_torch_save(path.parent / "best.pt", checkpoint)
    # After the checkpoint: a kill (or a full disk) between the writes costs at most this epoch's
    # seconds, never the epoch, and the error names last.pt when that is what could not be written.
    timing = [{"epoch": h["epoch"], **{k: h[k] for k in TIMING_KEYS if k in h}} for h in history]
    atomic_write_text(path.parent / TIMING_FILE, "".join(json.dumps(t) + "\n" for t in timing if len(t) > 1))
    # metrics.jsonl is rebuilt from the checkpoint's history (with the seconds): it can never disagree with it.
    atomic_write_text(path.parent / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


def canonical(value: Any) -> Any:
    """``value`` with every plain dict, list and tuple rebuilt and every string interned.

    pickle writes a string it has seen before as a reference to it, by object identity: the
    optimizer state a resumed run loaded from last.pt holds its own copies of keys such as "lr",
    where a fresh run's are the interned literals the config shares, so the same values would
    pickle to other bytes. Interned, equal strings are one object in every run. (Other mapping
    types, such as the scheduler's milestone Counter, are kept as they are: their keys are ints.)
    """
    if type(value) is str:  # sys.intern takes no subclass
        return sys.intern(value)
    if type(value) is dict:
        return {canonical(k): canonical(v) for k, v in value.items()}
    if type(value) is list:
        return [canonical(v) for v in value]
    if type(value) is tuple:
        return tuple(canonical(v) for v in value)
    return value


def interrupted_line(cfg: TrainConfig) -> str:
    """What a Ctrl-C kept of one run: its last finished epoch (last.pt is written once per epoch,
    atomically, so only the epoch that was running is lost), and the command that continues it."""
    last = run_dir(cfg) / "last.pt"
    try:
        saved = read_training_checkpoint(last) if last.is_file() else None
    except WmrbenchError:
        saved = None
    if saved is None:
        return f"run {cfg.run}: no epoch had finished, nothing was saved; run the same command again to start it"
    command = shlex.join(["wmrbench", "train", "--run", cfg.run, "--checkpoint-dir", cfg.checkpoint_dir, "--resume"])
    epochs = saved.get("config", {}).get("epochs", cfg.epochs)
    return (f"run {cfg.run}: {last} holds epoch {int(saved['epoch'])} of {epochs} (the epoch that was running "
            f"is lost); continue with: {command}")
