"""wmrbench.launch.job: a training job holds the preemption signal until the epoch in progress
is saved, then hands it to submitit's handler (here a stand-in that records when it was called)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import submitit
import torch

from tests.conftest import wait_until
from wmrbench.core.config import DatasetName, Defense
from wmrbench.launch.job import RunJob
from wmrbench.launch.specs import TrainSpec
from wmrbench.core.presets import train_config


class Requeued(Exception):
    pass


@pytest.mark.slow  # 17 s measured on the loaded 2-core machine: one epoch of a small digits run, in process
def test_the_signal_is_held_until_the_epoch_in_progress_is_saved(tmp_path: Path):
    spec = TrainSpec(train_config(DatasetName.DIGITS, Defense.TRADES, run="r", epochs=3, n_train=256, steps=3,
                                  milestones=(), checkpoint_dir=str(tmp_path), device="cpu", seed=0))
    usr = submitit.JobEnvironment._usr_sig()
    seen: list[int] = []

    def submitits_handler(signum: int, frame: object) -> None:  # stands in for checkpoint_and_try_requeue
        last = spec.folder / "last.pt"
        seen.append(torch.load(last, weights_only=True)["epoch"] if last.is_file() else 0)
        raise Requeued

    def signal_once_training_starts() -> None:  # the run's folder is made as its first epoch starts
        wait_until(spec.folder.is_dir, "the run starts")
        os.kill(os.getpid(), usr)

    previous = signal.signal(usr, submitits_handler)
    try:
        sender = threading.Thread(target=signal_once_training_starts)
        sender.start()
        with pytest.raises(Requeued):
            RunJob(spec)()
        sender.join()
    finally:
        signal.signal(usr, previous)
    assert seen == [1]  # called once, after epoch 1 was saved (not while it ran: 0)
    assert signal.getsignal(usr) is previous
