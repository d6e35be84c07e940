"""A result is never lost, never half written, and never fails after the work.

4. ``evaluate`` and ``attack`` refuse an existing complete result unless ``--overwrite``.
5. A result is one unit: the old summary goes first, then records.csv, then summary.json with
   the records' SHA-256, which readers check. Killed at any point (a real SIGKILL), a reader
   sees no result or the complete one; the temporary files a kill leaves are removed at the
   next start of that run.
6. Where a result goes is checked before any work; a failed write (a full disk) is one line.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import HANG_S, PYTHON, REPO, assert_one_line_error, files_under, invoke, run_wmrbench
from wmrbench.results.records import read_summary, sha256_file

EVAL = ("--n-examples", "30", "--steps", "1", "--alpha-test", "0,1", "--device", "cpu", "--quiet")


def evaluate(checkpoint: Path, results: Path, *extra: str):
    return invoke("evaluate", "--checkpoint", checkpoint, *EVAL, "--results-dir", results, *extra)


def strict_json(path: Path):
    """JSON as the standard defines it: NaN and Infinity are not numbers."""
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


# --- 4. no silent overwrite ----------------------------------------------------------------------


def test_evaluate_refuses_an_existing_result_unless_overwrite(tmp_path, digits_runs):
    checkpoint = digits_runs["trades-a0"]
    assert evaluate(checkpoint, tmp_path).exit_code == 0
    summary = tmp_path / "trades-a0" / "summary.json"
    before = summary.read_bytes()

    out = evaluate(checkpoint, tmp_path, "--n-examples", "20")
    assert_one_line_error(out, f"{summary} already exists", "--overwrite")
    assert summary.read_bytes() == before

    out = evaluate(checkpoint, tmp_path, "--n-examples", "20", "--overwrite")
    assert out.exit_code == 0, out.output
    assert strict_json(summary)["metrics"]["n_examples"] == 20
    assert read_summary(summary).records_sha256 == sha256_file(summary.parent / "records.csv")


def test_scoring_saved_points_does_not_replace_the_result_beside_them(tmp_path, digits_runs):
    # The README's `evaluate --adversarial results/demo-trades-a2/adversarial.pt` case.
    checkpoint = digits_runs["trades-a2"]
    assert evaluate(checkpoint, tmp_path).exit_code == 0
    adversarial = tmp_path / "trades-a2" / "adversarial.pt"
    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--n-examples", "10", "--results-dir", tmp_path)
    assert out.exit_code == 0, out.output
    summary = tmp_path / "trades-a2" / "summary.json"
    before, points = summary.read_bytes(), adversarial.read_bytes()

    assert_one_line_error(invoke("evaluate", "--adversarial", adversarial, "--quiet"), "already exists", "--overwrite")
    assert_one_line_error(invoke("attack", "--checkpoint", checkpoint, *EVAL, "--results-dir", tmp_path),
                          f"{adversarial} already exists", "--overwrite")
    assert summary.read_bytes() == before and adversarial.read_bytes() == points

    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--n-examples", "12", "--results-dir", tmp_path,
                 "--overwrite")
    assert out.exit_code == 0, out.output
    assert len(torch.load(adversarial, weights_only=True)["label"]) == 12
    out = invoke("evaluate", "--adversarial", adversarial, "--quiet", "--overwrite")
    assert out.exit_code == 0, out.output
    assert strict_json(summary)["metrics"]["n_examples"] == 12


# --- 5. one atomic unit --------------------------------------------------------------------------

# The real CLI in a process of its own that SIGKILLs itself at one point of the result's write:
# "summary" right after records.csv is in place (before the new summary.json), "rename" when a
# file is about to be renamed into place (its temporary file written, not yet renamed).
KILLED_AT = """
import os, signal, sys
where, args = sys.argv[1], sys.argv[2:]
import wmrbench.evaluation.pipeline as pipeline
import wmrbench.core.io as io
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "summary":
    pipeline.write_summary = die
else:
    real_rename = io._rename_over_regular  # the one rename into place (renameat2, or os.replace)
    def rename(src, dst, *a, **k):
        if str(dst).endswith(where):
            die()
        return real_rename(src, dst, *a, **k)
    io._rename_over_regular = rename
from wmrbench.cli.app import app
app(args=args, prog_name="wmrbench")
"""


def killed_at(where: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([PYTHON, "-c", KILLED_AT, where, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=HANG_S)


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_kill_between_records_and_summary_leaves_no_result_that_passes_for_complete(tmp_path, digits_runs, monkeypatch):
    checkpoint = digits_runs["trades-a0"]
    results = tmp_path / "results"
    assert evaluate(checkpoint, results).exit_code == 0
    assert evaluate(digits_runs["trades-a2"], results).exit_code == 0  # another, complete result
    folder = results / "trades-a0"
    old_records = (folder / "records.csv").read_bytes()

    killed = killed_at("summary", "evaluate", "--checkpoint", checkpoint, *EVAL, "--n-examples", "20",
                       "--results-dir", results, "--overwrite", cwd=tmp_path)

    assert killed.returncode == -signal.SIGKILL
    assert not (folder / "summary.json").exists()  # the old summary went before the new records came
    assert (folder / "records.csv").read_bytes() != old_records
    board = invoke("leaderboard", results)
    assert board.exit_code == 0, board.output
    assert "trades-a2" in board.stdout and "trades-a0" not in board.stdout  # no result, not an old one

    # Nothing complete there, but every batch was saved: the run is unfinished, and --resume
    # finishes it from the saved batch without attacking again.
    assert_one_line_error(evaluate(checkpoint, results, "--n-examples", "20"), "holds an unfinished evaluation",
                          "--resume")
    import wmrbench.evaluation.scorers as scorers

    def attack_again(*args, **kwargs):
        raise AssertionError("a saved batch was attacked again")

    monkeypatch.setattr(scorers, "run_batch_attacks", attack_again)
    out = evaluate(checkpoint, results, "--n-examples", "20", "--resume")
    assert out.exit_code == 0, out.output
    assert read_summary(folder / "summary.json").metrics.n_examples == 20
    assert not (folder / ".partial").exists()


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_records_that_are_not_the_summary_s_own_are_skipped_with_a_warning(tmp_path, digits_runs):
    # An older summary beside newer records (a kill under an older wmrbench, a copy, an edit).
    results = tmp_path / "results"
    for checkpoint in digits_runs.values():
        assert evaluate(checkpoint, results).exit_code == 0
    records = results / "trades-a0" / "records.csv"
    records.write_text(records.read_text().replace("\n1,", "\n2,", 1))

    board = invoke("leaderboard", results)

    assert board.exit_code == 0, board.output
    assert "trades-a2" in board.stdout and "trades-a0" not in board.stdout
    assert "Warning: skipped" in board.stderr and "records.csv beside it is not the one it was computed from" in board.stderr
    plots = invoke("plot", results)
    assert plots.exit_code == 0 and "records.csv beside it is not the one" in plots.stderr


@pytest.mark.slow  # 6 s measured on a loaded 2-core CPU (tests/README.md)
def test_temporary_files_of_a_killed_write_are_removed_when_the_run_starts_again(tmp_path, digits_runs):
    checkpoint = digits_runs["trades-a0"]
    results = tmp_path / "results"
    killed = killed_at("records.csv", "evaluate", "--checkpoint", checkpoint, *EVAL, "--results-dir", results,
                       cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    stale = [name for name in files_under(results / "trades-a0") if name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".records.csv.")
    assert not (results / "trades-a0" / "summary.json").exists()

    out = evaluate(checkpoint, results, "--resume")  # every batch was saved before the kill
    assert out.exit_code == 0, out.output
    assert files_under(results / "trades-a0") == {".lock", "records.csv", "summary.json"}


@pytest.mark.slow  # three trainings in processes of their own: 57 s measured on a loaded 2-core CPU
def test_temporary_checkpoint_of_a_killed_training_is_removed_on_resume(tmp_path):
    train = ("train", "--dataset", "digits", "--steps", "1", "--batch-size", "256", "--device", "cpu", "--quiet",
             "--run", "k")
    assert run_wmrbench(*train, "--epochs", "2", "--stop-after-epochs", "1", cwd=tmp_path).returncode == 0
    killed = killed_at("last.pt", *train, "--epochs", "2", "--resume", cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    folder = tmp_path / "checkpoints" / "k"
    assert any(name.startswith(".last.pt.") and name.endswith(".tmp") for name in files_under(folder))
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 1  # the last good one

    out = run_wmrbench(*train, "--epochs", "2", "--resume", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert files_under(folder) == {".lock", "last.pt", "metrics.jsonl", "timing.jsonl"}
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2


# --- 6. checked before the work; write errors are one line ---------------------------------------


@pytest.fixture
def no_attack(monkeypatch):
    """Fail the test if any attack (the work) starts."""
    import wmrbench.evaluation.runs as runs

    def refuse(*args, **kwargs):
        raise AssertionError("the attack ran before the output was checked")

    monkeypatch.setattr(runs, "collect", refuse)


def test_results_path_that_is_a_file_is_refused_before_any_work(tmp_path, digits_runs, no_attack):
    checkpoint = digits_runs["trades-a0"]
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(evaluate(checkpoint, blocker), f"cannot create the results folder {blocker / 'trades-a0'}")
    assert_one_line_error(evaluate(checkpoint, blocker / "deeper"), "cannot create the results folder")
    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--output", blocker / "adv.pt")
    assert_one_line_error(out, "cannot create the output folder")
    (tmp_path / "folder.pt").mkdir()
    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--output", tmp_path / "folder.pt")
    assert_one_line_error(out, "is a folder")
    assert files_under(tmp_path) == {"results", "folder.pt"}


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's read-only /sys")
def test_results_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, digits_runs, no_attack):
    # /sys refuses new files even to root (chmod does not stop root, so a chmod test alone would skip).
    checkpoint = digits_runs["trades-a0"]
    assert_one_line_error(evaluate(checkpoint, "/sys/kernel/wmrbench-results"), "cannot create the results folder")
    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--output", "/sys/kernel/adv.pt")
    assert_one_line_error(out, "cannot write to the output folder /sys/kernel")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_is_refused_before_any_work(tmp_path, digits_runs, no_attack):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        assert_one_line_error(evaluate(digits_runs["trades-a0"], results), "Permission denied")
    finally:
        results.chmod(0o755)


def test_a_full_disk_is_one_line_and_leaves_no_result(tmp_path, digits_runs, monkeypatch):
    # Without a small tmpfs, the disk fills up where ext4 says so: at write or fsync time.
    import wmrbench.core.io as io

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    checkpoint = digits_runs["trades-a0"]
    monkeypatch.setattr(io.os, "fsync", full)
    out = evaluate(checkpoint, tmp_path / "results")
    first = tmp_path / "results" / "trades-a0" / ".partial" / "manifest.json"  # written with the first batch
    assert_one_line_error(out, f"No space left on device: {first}")
    assert files_under(tmp_path) == set()  # no partial file; the folders it made are gone again

    out = invoke("train", "--dataset", "digits", "--epochs", "1", "--steps", "1", "--batch-size", "256",
                 "--device", "cpu", "--quiet", "--checkpoint-dir", tmp_path / "ck", "--run", "full")
    assert_one_line_error(out, f"No space left on device: {tmp_path / 'ck' / 'full' / 'last.pt'}")
    assert files_under(tmp_path) == set()


def _tmpfs_available() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                           capture_output=True, timeout=HANG_S)
    return probe.returncode == 0


@pytest.mark.slow  # 5 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.skipif(not _tmpfs_available(), reason="mounting a small tmpfs needs root and mount namespaces")
def test_a_real_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, digits_runs):
    # A 64 KiB tmpfs in a private mount namespace (the machine's mounts are untouched): the
    # adversarial file (about 120 KB for 60 digits examples) does not fit. The attack runs, the
    # write fails: one line, and the tmpfs holds nothing afterwards.
    disk = tmp_path / "disk"
    disk.mkdir()
    args = ["attack", "--checkpoint", digits_runs["trades-a0"], *EVAL, "--n-examples", "60", "--alpha-test", "1,2",
            "--output", disk / "adv.pt"]
    script = (f'mount -t tmpfs -o size=64k tmpfs "{disk}" && "{PYTHON}" -m wmrbench "$@"; rc=$?; '
              f'ls -A "{disk}" >&2; exit $rc')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *map(str, args)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [f"Error: No space left on device: {disk / 'adv.pt'}"]  # and `ls` printed nothing
