"""Which launcher runs a command's runs, and what the scheduler is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from wmrbench.core.checks import check_int, parse_enum
from wmrbench.core.errors import WmrbenchError, setting

DEFAULT_LAUNCHER_DIR = "jobs"
INSTALL_HINT = "pip install 'wmrbench[slurm]'"


class Launcher(str, Enum):
    INLINE = "inline"  # in this process, one run after the other (or side by side: a sweep)
    LOCAL = "local"  # one process per run on this machine, through submitit's local executor
    SLURM = "slurm"  # one SLURM job array, one task per run


@dataclass(frozen=True)
class SlurmSettings:
    """What each job of the array asks SLURM for (``None``: the cluster's default)."""

    partition: str | None = None
    time_min: int = 240  # per job; a run that needs longer is requeued and resumes
    gpus_per_job: int = 1
    cpus_per_job: int | None = None
    array_parallelism: int = 64  # tasks of the array running at once
    account: str | None = None
    sbatch: tuple[tuple[str, str], ...] = ()  # extra ``#SBATCH --KEY=VALUE`` lines


@dataclass(frozen=True)
class LaunchSettings:
    launcher: Launcher = Launcher.INLINE
    folder: str = DEFAULT_LAUNCHER_DIR  # submitit's pickles, logs and the sweeps' ledger
    max_timeouts: int = 3  # requeues after a time limit; preemptions requeue without limit
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


def parse_sbatch(lines: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """``["mem=64G", "--qos=high"]`` -> ``(("mem", "64G"), ("qos", "high"))``; one line for a bad one."""
    out = []
    for line in lines or ():
        key, eq, value = line.strip().lstrip("-").partition("=")
        if not eq or not key.strip() or not value.strip():
            raise WmrbenchError(f"{setting('sbatch')} takes KEY=VALUE (an #SBATCH option without its dashes, "
                                f"e.g. mem=64G); got {line!r}")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def launch_settings(
    launcher: str | None = None, folder: str | None = None, max_timeouts: int | None = None,
    partition: str | None = None, time_min: int | None = None, gpus_per_job: int | None = None,
    cpus_per_job: int | None = None, array_parallelism: int | None = None, account: str | None = None,
    sbatch: list[str] | tuple[str, ...] | None = None,
) -> LaunchSettings:
    """The settings from the given values (``None``: the default), each checked: one line."""
    base, slurm = LaunchSettings(), SlurmSettings()
    kind = parse_enum(Launcher, launcher or Launcher.INLINE.value, "launcher")
    for name, value, low in (("time_min", time_min, 1), ("gpus_per_job", gpus_per_job, 0), ("cpus_per_job", cpus_per_job, 1),
                             ("array_parallelism", array_parallelism, 1), ("max_timeouts", max_timeouts, 0)):
        if value is not None:
            check_int(value, name, low)
    return LaunchSettings(
        launcher=kind, folder=folder or base.folder,
        max_timeouts=base.max_timeouts if max_timeouts is None else max_timeouts,
        slurm=SlurmSettings(
            partition=partition, time_min=slurm.time_min if time_min is None else time_min,
            gpus_per_job=slurm.gpus_per_job if gpus_per_job is None else gpus_per_job, cpus_per_job=cpus_per_job,
            array_parallelism=slurm.array_parallelism if array_parallelism is None else array_parallelism,
            account=account, sbatch=parse_sbatch(sbatch),
        ),
    )
