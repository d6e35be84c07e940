"""The local launcher with the real submitit local executor: each run a process of its own, the
same files as inline; a job interrupted as SLURM would (submitit's own ``_interrupt``) requeues
itself, resumes and ends with the uninterrupted run's state."""

from __future__ import annotations

import filecmp
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.conftest import invoke, wait_until
from wmrbench.core.config import DatasetName, Defense
from wmrbench.launch import EvalSpec, Launcher, LaunchSettings, TrainSpec, eval_specs, launch, submit
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.core.presets import train_config

pytestmark = pytest.mark.slow  # real processes (each imports torch), real training: see each test's time

SMALL = ("--dataset", "digits", "--epochs", "2", "--n-train", "64", "--steps", "2", "--device", "cpu", "--quiet")


def assert_same_checkpoint_bytes(a_path: Path, b_path: Path) -> None:
    """The two last.pt files are the same bytes: weights, optimizer, schedule, history, config (both
    runs use the same relative --checkpoint-dir from folders of their own) and versions; the file
    holds no wall-clock time (that is timing.jsonl's)."""
    assert filecmp.cmp(a_path, b_path, shallow=False), f"{a_path} and {b_path} differ"


# 84 s measured on the loaded 2-core machine: two inline runs, then two processes.
def test_a_sweep_through_local_processes_gives_the_inline_checkpoints(monkeypatch):
    home = Path.cwd()
    for folder in ("inline", "local"):
        (home / folder).mkdir()
    monkeypatch.chdir(home / "inline")  # the same --checkpoint-dir, so the configs saved are the same too
    inline = invoke("train", *SMALL, "--alpha-train", "0,2", "--checkpoint-dir", "ck")
    assert inline.exit_code == 0, inline.output
    monkeypatch.chdir(home / "local")  # the local jobs start in the folder they were submitted from
    local = invoke("train", *SMALL, "--alpha-train", "0,2", "--checkpoint-dir", "ck", "--launcher", "local")
    assert local.exit_code == 0, local.output
    assert "ran as local processes: " in local.stdout
    for run in ("digits-trades-a0", "digits-trades-a2"):
        assert f"checkpoint: ck/{run}/last.pt" in local.stdout
        assert_same_checkpoint_bytes(home / "inline" / "ck" / run / "last.pt", home / "local" / "ck" / run / "last.pt")
        assert len((home / "local" / "ck" / run / "timing.jsonl").read_text().splitlines()) == 2  # the seconds, beside it
    # Rerun with --resume: both have finished, nothing is submitted.
    again = invoke("train", *SMALL, "--alpha-train", "0,2", "--checkpoint-dir", "ck", "--launcher", "local", "--resume")
    assert again.exit_code == 0, again.output
    assert "every run has finished; nothing to submit" in again.stdout


def signal_tasks(job) -> None:
    """SIGUSR2 to the job's task processes, as SLURM signals a job step before its time limit or a
    preemption. (submitit 1.5.4's ``LocalJob._interrupt()`` signals the local controller instead,
    which has no handler for it and dies, leaving the task to run on unsignalled.)"""
    from submitit.local.local import LocalJobEnvironment

    controller = int(job.job_id)
    tasks = [int(pid) for pid in Path(f"/proc/{controller}/task/{controller}/children").read_text().split()]
    assert tasks, "the job's task has not started"
    for pid in tasks:
        os.kill(pid, LocalJobEnvironment._usr_sig())


def _spec(checkpoint_dir: str) -> TrainSpec:
    return TrainSpec(train_config(DatasetName.DIGITS, Defense.TRADES, run="r", alpha_train=2.0, epochs=5, n_train=256,
                                  steps=3, milestones=(), checkpoint_dir=checkpoint_dir, device="cpu", seed=0))


# 71 s measured on the loaded 2-core machine: the run inline, then as a job signalled after its first epoch.
def test_an_interrupted_job_requeues_itself_resumes_and_ends_as_the_uninterrupted_run(monkeypatch):
    home = Path.cwd()
    for folder in ("whole", "job"):
        (home / folder).mkdir()
    monkeypatch.chdir(home / "whole")  # the same checkpoint_dir for both, so their last.pt can be the same bytes
    whole = _spec("ck").execute()
    assert whole.error is None
    monkeypatch.chdir(home / "job")
    spec = _spec("ck")
    launched = submit([spec], LaunchSettings(launcher=Launcher.LOCAL, max_timeouts=1))
    job = launched.jobs[0]
    last = spec.folder / "last.pt"
    wait_until(last.is_file, "the job's first epoch is saved")
    epochs_at_signal = torch.load(last, weights_only=True)["epoch"]
    signal_tasks(job)
    outcome = job.result()
    assert outcome.error is None, outcome.error
    assert epochs_at_signal < spec.cfg.epochs
    # submitit called the job's checkpoint(): what it requeued is the same run, resumed.
    with open(job.paths.submitted_pickle, "rb") as f:
        assert pickle.load(f).function.spec == TrainSpec(spec.cfg, resume=True)
    log = job.stderr()
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log
    # The requeued attempt resumed after the epochs saved: no epoch was trained twice (that the
    # job holds the signal until the epoch in progress is saved: tests/launch/test_job.py).
    assert [log.count(f"epoch {e}/5 ") for e in range(1, 6)] == [1] * 5, log
    assert_same_checkpoint_bytes(home / "whole" / "ck" / "r" / "last.pt", last)
    # Both attempts' epoch times survived the requeue, in timing.jsonl and in metrics.jsonl.
    timed = [json.loads(line) for line in (spec.folder / "metrics.jsonl").read_text().splitlines()]
    assert [(h["epoch"], h["seconds"] > 0) for h in timed] == [(e, True) for e in range(1, 6)]


# 41 s measured on the loaded 2-core machine (8 s of it the session's two digits trainings).
def test_two_checkpoints_evaluated_as_local_jobs_give_the_inline_records(digits_runs):
    sources = [ModelSource(SourceKind.CHECKPOINT, checkpoint=str(p)) for p in digits_runs.values()]

    def specs(results_dir: str) -> list[EvalSpec]:
        options = {"n_examples": 40, "steps": 2, "alpha_test": (0.0, 2.0), "device": "cpu", "results_dir": results_dir}
        return eval_specs(sources, options, None, None, overwrite=False, resume=False)

    inline = launch(specs("inline"), LaunchSettings(), show_progress=False)
    local = launch(specs("local"), LaunchSettings(launcher=Launcher.LOCAL))
    assert [o.error for o in inline.outcomes + local.outcomes] == [None] * 4
    for run in ("trades-a0", "trades-a2"):
        a, b = (Path(d, run, "records.csv").read_bytes() for d in ("inline", "local"))
        assert a == b and len(a) > 0


# 40 s measured on the loaded 2-core machine: one evaluation inline, then as a job signalled after its first batch.
def test_an_interrupted_evaluation_job_resumes_from_its_saved_batches_and_writes_the_inline_records(digits_runs):
    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(digits_runs["trades-a2"]))

    def spec(results_dir: str) -> EvalSpec:
        options = {"n_examples": 120, "batch_size": 10, "steps": 10, "alpha_test": (2.0,), "device": "cpu",
                   "results_dir": results_dir}
        return eval_specs([source], options, None, None, overwrite=False, resume=False)[0]

    assert spec("whole").execute().error is None
    job_spec = spec("job")
    job = submit([job_spec], LaunchSettings(launcher=Launcher.LOCAL, max_timeouts=1)).jobs[0]
    first = job_spec.folder / ".partial" / "batch-000000.pt"
    wait_until(first.is_file, "the job's first batch is saved")
    assert not (job_spec.folder / "summary.json").exists()
    signal_tasks(job)
    outcome = job.result()
    assert outcome.error is None, outcome.error
    with open(job.paths.submitted_pickle, "rb") as f:
        assert pickle.load(f).function.spec.resume is True  # requeued as evaluate --resume
    assert "this job is preempted" in job.stderr()
    assert Path("job", "trades-a2", "records.csv").read_bytes() == Path("whole", "trades-a2", "records.csv").read_bytes()
