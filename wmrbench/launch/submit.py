"""Run a command's single runs through the chosen launcher.

``inline`` runs them here, one after the other. ``local`` starts one process per run through
submitit's local executor and waits for them. ``slurm`` submits one job array (one task per run)
and returns with the job ids: rerunning the command with ``resume`` collects the finished runs and
submits only the others.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wmrbench.core.errors import WmrbenchError, first_line, setting
from wmrbench.launch import ledger
from wmrbench.launch.job import RunJob
from wmrbench.launch.settings import INSTALL_HINT, Launcher, LaunchSettings
from wmrbench.launch.specs import RunOutcome, Spec, check_distinct

Log = Callable[[str], None]


@dataclass
class Launched:
    """What a launch did: the runs found finished (``resume``), the jobs submitted, and (inline,
    local) each submitted run's outcome."""

    launcher: Launcher
    finished: list[Spec] = field(default_factory=list)
    submitted: list[Spec] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)  # submitit Job objects (local, slurm)
    outcomes: list[RunOutcome] = field(default_factory=list)
    state_command: str | None = None  # how to see the jobs' state (slurm)

    @property
    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs]


def require_submitit(launcher: Launcher) -> Any:
    try:
        import submitit
    except ImportError:
        raise WmrbenchError(f"{setting('launcher', launcher.value)} needs submitit: {INSTALL_HINT}") from None
    return submitit


def executor(settings: LaunchSettings, folder: Path) -> Any:
    """submitit's executor for ``settings.launcher`` writing its pickles and logs to ``folder``."""
    submitit = require_submitit(settings.launcher)
    slurm = settings.slurm
    if settings.launcher is Launcher.LOCAL:
        ex = submitit.LocalExecutor(folder, max_num_timeout=settings.max_timeouts)
        # The local executor's own limit (2 minutes by default) would end a training run: the
        # scheduler's time per job stands in for it.
        ex.update_parameters(timeout_min=slurm.time_min)
        return ex
    ex = submitit.SlurmExecutor(folder, max_num_timeout=settings.max_timeouts)
    params: dict[str, Any] = dict(time=slurm.time_min, gpus_per_node=slurm.gpus_per_job, ntasks_per_node=1, nodes=1,
                                  array_parallelism=slurm.array_parallelism, job_name="wmrbench")
    for name, value in (("partition", slurm.partition), ("account", slurm.account), ("cpus_per_task", slurm.cpus_per_job)):
        if value is not None:
            params[name] = value
    if slurm.sbatch:
        params["additional_parameters"] = dict(slurm.sbatch)
    ex.update_parameters(**params)
    return ex


def local_gpus(index: int, per_job: int) -> dict[str, Any]:
    """The GPUs of the ``index``-th local job: ``per_job`` of this machine's, taken in turn, so that
    runs started together spread over the GPUs (submitit would give every job the first ones). On
    a machine without a GPU: none (the jobs run on the CPU)."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    # submitit writes these numbers into CUDA_VISIBLE_DEVICES: map through the launcher's own list.
    ids = [int(x) for x in visible.split(",") if x.strip().isdigit()] if visible else list(range(torch.cuda.device_count()))
    if not ids or per_job == 0:
        return {"gpus_per_node": 0, "visible_gpus": ()}
    per_job = min(per_job, len(ids))
    return {"gpus_per_node": per_job, "visible_gpus": tuple(ids[(index * per_job + k) % len(ids)] for k in range(per_job))}


def submit(specs: Sequence[Spec], settings: LaunchSettings, resume: bool = False) -> Launched:
    """Submit one job per run that is not finished (all of them unless ``resume``) and return
    without waiting. Refused, before anything is submitted, when two runs write one folder or an
    earlier launch's jobs that write any of these folders are still queued or running."""
    if settings.launcher is Launcher.INLINE:
        raise ValueError("submit() is for local and slurm; launch() runs inline")
    submitit = require_submitit(settings.launcher)
    check_distinct(specs)
    launcher_dir = Path(settings.folder)
    ledger.check_not_running(launcher_dir, [s.folder for s in specs])
    launched = Launched(settings.launcher)
    for spec in specs:
        (launched.finished if resume and spec.done() else launched.submitted).append(spec)
    if not launched.submitted:
        return launched
    key = ledger.sweep_key([s.folder for s in specs])
    folder = launcher_dir / key
    try:
        ex = executor(settings, folder)
        if settings.launcher is Launcher.LOCAL:
            jobs = []
            for i, spec in enumerate(launched.submitted):
                ex.update_parameters(**local_gpus(i, settings.slurm.gpus_per_job))
                jobs.append(ex.submit(RunJob(spec, threads=torch.get_num_threads())))  # as inline runs
        else:
            with ex.batch():  # one job array
                jobs = [ex.submit(RunJob(spec)) for spec in launched.submitted]
    except (OSError, RuntimeError, submitit.core.utils.FailedJobError) as exc:  # no sbatch/srun here, sbatch refused
        raise WmrbenchError(f"the {settings.launcher.value} launcher could not submit the jobs: {first_line(exc)}") from None
    launched.jobs = jobs
    ledger.write_sweep(launcher_dir, key, ledger.SweepEntry(settings.launcher.value, str(folder), tuple(
        ledger.JobEntry(spec.name, str(spec.folder.resolve()), job.job_id) for spec, job in zip(launched.submitted, jobs))))
    if settings.launcher is Launcher.SLURM:
        array = jobs[0].job_id.split("_")[0]
        launched.state_command = shlex.join(["sacct", "-j", array, "--format", "JobID,JobName,State,Elapsed,NodeList"])
    return launched


def wait(launched: Launched) -> list[RunOutcome]:
    """Each submitted job's outcome, in order; a job that crashed is its run's one-line error."""
    import submitit

    outcomes = []
    for spec, job in zip(launched.submitted, launched.jobs):
        try:
            outcomes.append(job.result())
        except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as exc:
            outcomes.append(RunOutcome(spec.name, error=f"job {job.job_id} failed: {_last_line(exc)} "
                                                         f"(its log: {job.paths.stderr})"))
    launched.outcomes = outcomes
    return outcomes


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def launch(specs: Sequence[Spec], settings: LaunchSettings, resume: bool = False, show_progress: bool = True) -> Launched:
    """Run the specs through ``settings.launcher``: inline and local return once every run has
    ended (``outcomes``); slurm returns once the array is submitted."""
    if settings.launcher is not Launcher.INLINE:
        launched = submit(specs, settings, resume)
        if settings.launcher is Launcher.LOCAL:
            wait(launched)
        return launched
    check_distinct(specs)
    launched = Launched(Launcher.INLINE)
    for spec in specs:
        if resume and spec.done():
            launched.finished.append(spec)
            continue
        launched.submitted.append(spec)
        launched.outcomes.append(spec.execute(show_progress=show_progress))
    return launched
