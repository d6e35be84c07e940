"""The callable a submitit job runs: one spec, with submitit's checkpoint protocol.

When SLURM (or submitit's local executor) signals a job before its time limit or a preemption,
submitit calls :meth:`RunJob.checkpoint` and requeues what it returns: the same run with
``resume=True``. Training saves ``last.pt`` after every epoch and evaluation every finished
batch, each atomically, so the requeued job continues from the last of them and ends with the
files an uninterrupted run writes.

A training job also lets the epoch in progress finish first: it trains one epoch per call
(``stop_after_epochs=1``, resumed exactly) and holds the signal until that epoch is saved, then
hands it to submitit. An epoch longer than the signal's lead time (``--signal=USR2@90``) is cut
by SLURM at the time limit instead, and trained again after the requeue.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from wmrbench.core.errors import WmrbenchError
from wmrbench.launch.specs import RunOutcome, Spec, TrainSpec
from wmrbench.training import fit_sweep


class RunJob:
    """``threads``: torch's CPU threads in the job. A local job gets the launching command's
    count, so that its numbers are the inline run's (2 threads and 1 round float32 sums
    differently); None (a cluster job) applies the command's own rule there
    (:func:`wmrbench.core.runtime.apply_threads`: $OMP_NUM_THREADS, else half the node's cores)."""

    def __init__(self, spec: Spec, threads: int | None = None) -> None:
        self.spec = spec
        self.threads = threads

    def __call__(self) -> RunOutcome:
        from wmrbench.core.runtime import apply_threads

        apply_threads(self.threads)
        try:
            if isinstance(self.spec, TrainSpec):
                return _train_epoch_by_epoch(self.spec)
            return self.spec.execute(show_progress=False)
        except WmrbenchError as exc:  # bad input: one line for the launcher to print, not a traceback
            # Its settings stay marked (errors.setting): the launching command names them its own way.
            return RunOutcome(self.spec.name, error=Exception.__str__(exc))

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(self.spec.resumed(), self.threads))

    def __repr__(self) -> str:  # submitit logs it
        return f"RunJob({self.spec.name!r}, resume={self.spec.resume})"


def _train_epoch_by_epoch(spec: TrainSpec) -> RunOutcome:
    """The run, one epoch per call, with submitit's preemption signal held until the epoch in
    progress is saved (outside submitit, where nothing handles that signal: the run in one call)."""
    import submitit

    usr = submitit.JobEnvironment._usr_sig()
    submitits: Any = signal.getsignal(usr)
    if not callable(submitits):
        return spec.execute(show_progress=False)
    held: list[tuple[int, Any]] = []
    handler: Callable[[int, Any], None] = lambda signum, frame: held.append((signum, frame))  # noqa: E731
    signal.signal(usr, handler)
    try:
        resume = spec.resume
        while True:
            result = fit_sweep([spec.cfg], resume=resume, missing_ok=True, stop_after_epochs=1, show_progress=False)
            if result.failures:
                return RunOutcome(spec.name, error=result.failures[spec.cfg.run])
            resume = True
            if spec.done():
                return RunOutcome(spec.name, path=str(result.results[0].checkpoint))
            if held:  # the epoch is saved: now submitit checkpoints (requeues this run resumed) and exits
                signal.signal(usr, submitits)
                submitits(*held[0])
    finally:
        signal.signal(usr, submitits)
