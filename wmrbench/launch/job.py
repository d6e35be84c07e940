"""The callable a submitit job runs: one spec, with submitit's checkpoint protocol.

When SLURM (or ``LocalJob._interrupt``) signals a job before its time limit or a preemption,
submitit calls :meth:`RunJob.checkpoint` and requeues what it returns: the same run with
``resume=True``. Nothing has to be saved at that moment: training saves ``last.pt`` after every
epoch and evaluation every finished batch, each atomically, so the requeued job continues from
the last of them and ends with the files an uninterrupted run writes.
"""

from __future__ import annotations

from typing import Any

from wmrbench.errors import WmrbenchError
from wmrbench.launch.specs import RunOutcome, Spec


class RunJob:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def __call__(self) -> RunOutcome:
        try:
            return self.spec.execute(show_progress=False)
        except WmrbenchError as exc:  # bad input: one line for the launcher to print, not a traceback
            # Its settings stay marked (errors.setting): the launching command names them its own way.
            return RunOutcome(self.spec.name, error=Exception.__str__(exc))

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(self.spec.resumed()))

    def __repr__(self) -> str:  # submitit logs it
        return f"RunJob({self.spec.name!r}, resume={self.spec.resume})"
