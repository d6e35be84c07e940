"""A write never replaces what is not a regular file.

Every write goes through wmrbench.core.io's atomic writer (temporary file, then rename). A rename over
a device node or a FIFO would replace the node with a regular file (as root, ``--output
/dev/full`` destroyed /dev/full). These tests make real nodes in tmp_path (a FIFO with
os.mkfifo, a character device with os.mknod, the numbers of /dev/null) and check, through the
CLI, that the write is refused in one line and the node is untouched.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import HANG_S, PYTHON, REPO, assert_one_line_error, invoke
from tests.cli.test_reliability_results import no_attack  # noqa: F401  (fixture: fails if the attack starts)
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.io import atomic_torch_save, atomic_write_json, atomic_write_text


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _device(path: Path) -> Path:
    """A character device with /dev/null's numbers, or a skip that says why (mknod needs root or
    CAP_MKNOD, and some containers forbid it)."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        print(f"skipping: os.mknod is not permitted here ({exc})")
        pytest.skip(f"os.mknod is not permitted here ({exc})")
    return path


def _node(kind: str, path: Path) -> Path:
    if kind == "fifo":
        return _fifo(path)
    if kind == "device":
        return _device(path)
    path.mkdir()
    return path


CHECKS = {"fifo": stat.S_ISFIFO, "device": stat.S_ISCHR, "folder": stat.S_ISDIR}
WORDS = {"fifo": "a FIFO", "device": "a character device", "folder": "a folder"}


def _untouched(kind: str, path: Path, before: os.stat_result) -> None:
    after = os.lstat(path)
    assert CHECKS[kind](after.st_mode), f"{path} is no longer {WORDS[kind]}"
    assert after.st_ino == before.st_ino
    assert not list(path.parent.glob(f".{path.name}.*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_leaderboard_output_that_is_not_a_regular_file_is_refused(kind, digits_results, tmp_path):
    node = _node(kind, tmp_path / "board.md")
    before = os.lstat(node)
    out = invoke("leaderboard", digits_results, "--output", node)
    line = assert_one_line_error(out, f"refusing to write {node}", WORDS[kind], "not a regular file", "--output -")
    assert "wrote" not in out.stdout
    assert str(node) in line
    _untouched(kind, node, before)


def test_leaderboard_output_dash_prints_the_file_and_writes_nothing(digits_results, tmp_path):
    before = sorted(p.name for p in digits_results.iterdir())
    out = invoke("leaderboard", digits_results, "--format", "csv", "--table", "non-uniform", "--output", "-")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0].startswith("Dataset,") or "," in out.stdout.splitlines()[0]
    assert "wrote" not in out.stdout and "┃" not in out.stdout  # only the file's text, no terminal table
    assert sorted(p.name for p in digits_results.iterdir()) == before
    # the same text as the file --output FILE writes
    path = tmp_path / "board.csv"
    assert invoke("leaderboard", digits_results, "--format", "csv", "--table", "non-uniform", "--output", path).exit_code == 0
    assert path.read_text() == out.stdout


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
def test_leaderboard_to_a_full_stdout_is_one_line_and_not_reported_written(digits_results):
    """``--output - > /dev/full``: the failed write is an error, never ``wrote``."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([PYTHON, "-m", "wmrbench", "leaderboard", str(digits_results), "--output", "-"],
                              stdout=full, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=HANG_S)
    # stderr: the small-n_eff warnings (stdout holds only the file) and the one error line
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "effective examples (n_eff)" not in line]
    assert proc.returncode == 2, proc.stderr
    assert lines == ["Error: cannot write to standard output: No space left on device"], proc.stderr


def test_a_symlink_to_a_regular_file_is_followed_and_stays_a_link(digits_results, tmp_path):
    target = tmp_path / "real.md"
    target.write_text("old\n")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    out = invoke("leaderboard", digits_results, "--output", link)
    assert out.exit_code == 0, out.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "A_rob" in target.read_text()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_symlink_to_a_node_is_refused(kind, digits_results, tmp_path):
    node = _node(kind, tmp_path / "node")
    before = os.lstat(node)
    link = tmp_path / "link.md"
    link.symlink_to(node)
    out = invoke("leaderboard", digits_results, "--output", link)
    assert_one_line_error(out, f"refusing to write {link}", "symbolic link", WORDS[kind])
    assert link.is_symlink()
    _untouched(kind, node, before)


def test_a_dangling_symlink_is_refused(digits_results, tmp_path):
    link = tmp_path / "link.md"
    link.symlink_to(tmp_path / "nowhere" / "x.md")
    assert_one_line_error(invoke("leaderboard", digits_results, "--output", link), "does not exist")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("writer", ["text", "json", "torch"])
def test_every_io_writer_refuses_a_node(kind, writer, tmp_path):
    node = _node(kind, tmp_path / "out")
    before = os.lstat(node)
    write = {"text": lambda p: atomic_write_text(p, "x"), "json": lambda p: atomic_write_json(p, {"a": 1}),
             "torch": lambda p: atomic_torch_save(p, {"w": torch.zeros(2)})}[writer]
    with pytest.raises(WmrbenchError, match="not a regular file"):
        write(node)
    _untouched(kind, node, before)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_evaluate_refuses_a_records_file_that_is_a_node_before_any_work(kind, digits_runs, tmp_path, no_attack):
    """The result files of a run folder (records.csv here) are written through the same check;
    the refusal comes before the attack."""
    results = tmp_path / "results"
    (results / "r").mkdir(parents=True)
    node = _node(kind, results / "r" / "records.csv")
    before = os.lstat(node)
    checkpoint = next(iter(digits_runs.values()))
    out = invoke("evaluate", "--checkpoint", checkpoint, "--n-examples", "8", "--steps", "1", "--alpha-test", "1",
                 "--results-dir", results, "--run", "r", "--quiet")
    assert_one_line_error(out, f"refusing to write {node}", WORDS[kind])
    assert not (results / "r" / "summary.json").exists()
    _untouched(kind, node, before)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_attack_output_that_is_a_node_is_refused_even_with_overwrite(kind, digits_runs, tmp_path, no_attack):
    node = _node(kind, tmp_path / "adv.pt")
    before = os.lstat(node)
    checkpoint = next(iter(digits_runs.values()))
    out = invoke("attack", "--checkpoint", checkpoint, "--n-examples", "8", "--steps", "1", "--output", node,
                 "--overwrite", "--results-dir", tmp_path / "results", "--quiet")
    assert_one_line_error(out, f"refusing to write {node}", WORDS[kind])
    _untouched(kind, node, before)


def test_attack_output_dash_is_refused(digits_runs, tmp_path):
    checkpoint = next(iter(digits_runs.values()))
    out = invoke("attack", "--checkpoint", checkpoint, "--n-examples", "8", "--output", "-",
                 "--results-dir", tmp_path / "results", "--quiet")
    assert_one_line_error(out, "binary", "not -")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_train_refuses_a_checkpoint_that_is_a_node(kind, tmp_path):
    folder = tmp_path / "checkpoints" / "t"
    folder.mkdir(parents=True)
    node = _node(kind, folder / "metrics.jsonl")
    before = os.lstat(node)
    out = invoke("train", "--dataset", "digits", "--defense", "trades", "--epochs", "1", "--steps", "1",
                 "--checkpoint-dir", tmp_path / "checkpoints", "--run", "t", "--device", "cpu", "--quiet")
    assert out.exit_code == 2, out.output
    assert "not a regular file" in out.stderr and "Traceback" not in out.output
    _untouched(kind, node, before)
