"""A run writes its own folder and nothing else, and one writer at a time.

1. A run name is one safe path component: anything else is refused with one line, and nothing
   is written anywhere.
2. ``--resume`` writes the folder it was given, not the run the checkpoint recorded.
3. A second writer of a run folder (train, evaluate, attack) is refused with one line naming
   the first; the kernel drops the lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import PYTHON, REPO, assert_one_line_error, files_under, invoke, run_wmrbench, wait_until

TRAIN = ("train", "--dataset", "digits", "--epochs", "1", "--steps", "1", "--batch-size", "256", "--device", "cpu",
         "--quiet")
EVAL = ("--n-examples", "20", "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--quiet")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_RUNS = {
    "parent": "../../x",
    "absolute": "/abs/path",
    "dotdot": "..",
    "dot": ".",
    "empty": "",
    "blank": "   ",
    "nested": "a/b",
    "backslash": "a\\b",
    "nul": "a\0b",
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_a_run_name_that_is_a_path_is_refused_by_every_command(case, tmp_path, monkeypatch, digits_runs):
    run = BAD_RUNS[case]
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # checkpoints/ and results/ would land here, ../../x two levels up
    checkpoint = digits_runs["trades-a0"]
    commands = {
        "train": [*TRAIN, "--run", run],
        "evaluate": ["evaluate", "--checkpoint", checkpoint, *EVAL, "--run", run],
        "attack": ["attack", "--checkpoint", checkpoint, *EVAL, "--run", run],
    }
    for name, args in commands.items():
        line = assert_one_line_error(invoke(*args), "is not a run name")
        assert "a run name is one folder name" in line, name
    assert files_under(tmp_path) == {"work", "work/deep"}  # nothing written, anywhere
    assert not Path("/abs").exists()


def test_resume_of_a_copied_run_writes_the_copy_not_the_original(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = invoke(*TRAIN, "--epochs", "2", "--stop-after-epochs", "1", "--run", "runA")
    assert out.exit_code == 0, out.output
    original = tmp_path / "checkpoints" / "runA" / "last.pt"
    before = sha(original)
    shutil.copytree(tmp_path / "checkpoints" / "runA", tmp_path / "checkpoints" / "runB")

    out = invoke("train", "--run", "runB", "--resume", "--epochs", "2", "--device", "cpu", "--quiet")

    assert out.exit_code == 0, out.output
    assert sha(original) == before  # runA untouched
    copy = torch.load(tmp_path / "checkpoints" / "runB" / "last.pt", weights_only=True)
    assert copy["epoch"] == 2 and copy["config"]["run"] == "runB"
    lines = (tmp_path / "checkpoints" / "runB" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def _pid_in(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


# The real CLI in a process of its own, whose epochs wait on the test: epoch 1 starts and waits
# for the file GO, epoch 2 starts and waits forever (until SIGKILL). STATE holds the epoch it is in.
PACED_TRAIN = """
import pathlib, signal, sys, time
import wmrbench.training.step as training
state, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
real = training.train_epoch
def paced(*args, **kwargs):
    epoch = kwargs["epoch"]
    state.write_text(str(epoch))
    while epoch == 0 and not go.exists():
        time.sleep(0.05)
    while epoch == 1:
        signal.pause()
    return real(*args, **kwargs)
training.train_epoch = paced
from wmrbench.cli.app import app
app(args=sys.argv[3:], prog_name="wmrbench")
"""


@pytest.mark.slow  # four processes start: 48 s measured on a loaded 2-core CPU
def test_a_second_training_of_the_same_run_is_refused_and_a_kill_releases_the_lock(tmp_path):
    run_dir = tmp_path / "checkpoints" / "x"
    state, go = tmp_path / "state", tmp_path / "go"
    args = [*TRAIN, "--epochs", "3", "--run", "x"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([PYTHON, "-c", PACED_TRAIN, state, go, *args], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: state.is_file() or first.poll() is not None, "the first run's first epoch")
        assert first.poll() is None and _pid_in(run_dir / ".lock") == first.pid, first.stderr.read()
        second = run_wmrbench(*args, cwd=tmp_path)  # the same run, started while the first trains
        assert_one_line_error(second, f"{Path('checkpoints') / 'x'} is in use by process {first.pid}",
                              "wait for that run to finish")

        go.touch()  # the first finishes epoch 1 (a checkpoint) and stays in epoch 2
        wait_until(lambda: state.read_text() == "1" or first.poll() is not None, "the second epoch")
        resumed = run_wmrbench("train", "--run", "x", "--resume", "--device", "cpu", "--quiet", cwd=tmp_path)
        assert_one_line_error(resumed, f"in use by process {first.pid}")
        assert first.poll() is None  # the refused writers did not disturb the first

        first.send_signal(signal.SIGKILL)  # the kernel drops the flock with the process
        first.wait()  # the kill is the event
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1
    out = run_wmrbench("train", "--run", "x", "--resume", "--epochs", "2", "--device", "cpu", "--quiet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 2


HOLD_LOCK = """
import fcntl, os, signal, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
while True:  # until the test kills it
    signal.pause()
"""


def test_evaluate_and_attack_refuse_a_results_folder_another_process_writes(tmp_path, digits_runs):
    folder = tmp_path / "results" / "busy"
    folder.mkdir(parents=True)
    holder = subprocess.Popen([PYTHON, "-c", HOLD_LOCK, str(folder / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        checkpoint = digits_runs["trades-a0"]
        for command in ("evaluate", "attack"):
            out = invoke(command, "--checkpoint", checkpoint, *EVAL, "--run", "busy", "--results-dir", tmp_path / "results")
            assert_one_line_error(out, f"is in use by process {holder.pid}")
        assert files_under(folder) == {".lock"}  # nothing written beside the other writer
    finally:
        holder.kill()
        holder.wait()
    out = invoke("evaluate", "--checkpoint", checkpoint, *EVAL, "--run", "busy", "--results-dir", tmp_path / "results")
    assert out.exit_code == 0, out.output  # the lock died with its holder
    assert (folder / "summary.json").is_file()
