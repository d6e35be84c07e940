"""Which jobs each launched sweep has, so that a second launch of it, while the first is queued or
running, is refused with the job ids named (one writer per run folder, across launches too).

One JSON file per sweep, ``LAUNCHER_DIR/sweeps/<key>.json``, the key a hash of the folders its runs
write; a launch is refused when any job of any recorded sweep that writes one of its folders is
still alive (SLURM: its state in sacct; local: its controller process).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import atomic_write_json
from wmrbench.launch.settings import Launcher

# sacct's states of a job that may still write (the others are ended: COMPLETED, FAILED, ...).
ALIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD",
         "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED"}


@dataclass(frozen=True)
class JobEntry:
    run: str
    folder: str  # the run's folder, resolved
    job_id: str


@dataclass(frozen=True)
class SweepEntry:
    launcher: str
    submitit_folder: str
    jobs: tuple[JobEntry, ...]


def sweep_key(folders: Sequence[Path]) -> str:
    text = "\n".join(sorted(str(f.resolve()) for f in folders))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _ledger(launcher_dir: Path) -> Path:
    return launcher_dir / "sweeps"


def read_sweeps(launcher_dir: Path) -> list[SweepEntry]:
    out = []
    for path in sorted(_ledger(launcher_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(SweepEntry(data["launcher"], data["submitit_folder"], tuple(JobEntry(**j) for j in data["jobs"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a ledger file no one can read guards nothing; the run folders' own locks still do
    return out


def write_sweep(launcher_dir: Path, key: str, entry: SweepEntry) -> Path:
    return atomic_write_json(_ledger(launcher_dir) / f"{key}.json", asdict(entry))


def alive(entry: SweepEntry, job: JobEntry) -> bool:
    if entry.launcher == Launcher.LOCAL.value:
        return _process_alive(int(job.job_id))
    import submitit

    state = submitit.SlurmJob(entry.submitit_folder, job.job_id).state
    return state.split()[0] in ALIVE if state else False


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child not yet reaped by its parent is a zombie: it writes nothing
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def check_not_running(launcher_dir: Path, folders: Sequence[Path]) -> None:
    """One line naming the live jobs of an earlier launch that write any of ``folders``."""
    wanted = {str(f.resolve()) for f in folders}
    busy = [(entry, job) for entry in read_sweeps(launcher_dir) for job in entry.jobs
            if job.folder in wanted and alive(entry, job)]
    if busy:
        ids = " ".join(job.job_id for _, job in busy)
        runs = ", ".join(job.run for _, job in busy[:3]) + (f" and {len(busy) - 3} more" if len(busy) > 3 else "")
        cancel = "kill" if all(entry.launcher == Launcher.LOCAL.value for entry, _ in busy) else "scancel"
        raise WmrbenchError(f"this sweep is already queued or running as job(s) {ids} ({runs}); wait for them to end "
                            f"(or cancel them: {cancel} {ids}) before launching it again")
