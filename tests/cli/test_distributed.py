"""Multi-process training and evaluation, started as a user starts them: torchrun.

Every multi-process run here is ``<python> -m torch.distributed.run --standalone
--nproc-per-node 2 -m wmrbench -- <command> ...`` on the CPU (gloo), in a subprocess. The
``--`` keeps torchrun's own parser away from our options (it would read ``--run`` and
``--start`` as abbreviations of its ``--run-path`` and ``--start-method``).

Each wait is for an event (a file, a process's exit); a subprocess still running after
tests.conftest.HANG_S, far above any run's time on a loaded machine, is hung: the test fails
saying so instead of blocking the suite (and takes torchrun's workers down). No assertion is
about time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import HANG_S, REPO, hung
from wmrbench.core import distributed
from wmrbench.cli.app import app
from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.presets import train_config
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.training import fit, stream_seed

ROOT = REPO
DIST_TIMEOUT_S = 30
TRAIN = [
    "train", "--dataset", "digits", "--defense", "trades", "--epochs", "2", "--steps", "3",
    "--batch-size", "64", "--device", "cpu", "--quiet",
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "wmrbench", "--", *args]


def _run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=HANG_S)


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _start(cmd: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    # A session of its own, so the test can kill torchrun's group; the workers torchrun starts
    # get sessions of their own too, and are found through /proc.
    return subprocess.Popen(cmd, cwd=cwd, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its parent just has not reaped it yet


def _wait_for(predicate, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + HANG_S  # a safety net against a hang, not a pace
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"torchrun ended (rc {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(hung(f"torchrun, waiting for {what},"))
        time.sleep(0.02)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{hung('torchrun')}:\n{err[-3000:]}")
    return proc.returncode, out, err


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_training_state(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key]["momentum_buffer"], sb[key]["momentum_buffer"]), key
    assert a["scheduler"] == b["scheduler"]
    assert a["history"] == b["history"]  # every value: the wall-clock seconds are in timing.jsonl, not here


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="module")
def uninterrupted(work: Path) -> Path:
    """Two epochs with two processes, start to end: the reference every resume must match."""
    _ok(_run(_torchrun(2, *TRAIN, "--run", "whole"), work))
    return work / "checkpoints" / "whole" / "last.pt"


# --- pure helpers (no processes) -----------------------------------------------------------------


def test_epoch_shards_cover_the_global_batches_of_one_process() -> None:
    order = torch.randperm(37, generator=torch.Generator().manual_seed(0))
    world, batch = 3, 6
    per_rank_batch = batch // world
    shards = [distributed.epoch_shard(order, r, world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    padded = torch.cat([order, order[: 39 - 37]])  # wrapped around to a multiple of 3
    for step in range(-(-len(shards[0]) // per_rank_batch)):
        per_rank = [s[step * per_rank_batch : (step + 1) * per_rank_batch] for s in shards]
        together = sorted(torch.cat(per_rank).tolist())
        assert together == sorted(padded[step * batch : (step + 1) * batch].tolist())
    assert torch.equal(distributed.epoch_shard(order, 0, 1), order)


def test_eval_shards_are_runs_of_whole_batches_in_index_order() -> None:
    for n, batch, world in ((101, 7, 2), (101, 32, 3), (10, 4, 2), (5, 8, 2)):
        shards = [distributed.eval_shard(n, batch, r, world) for r in range(world)]
        assert torch.equal(torch.cat(shards), torch.arange(n))
        for shard in shards:
            if len(shard):  # starts on a batch boundary, ends on one or at the end
                assert shard[0] % batch == 0 and (len(shard) % batch == 0 or shard[-1] == n - 1)
    assert [len(distributed.eval_shard(5, 8, r, 2)) for r in range(2)] == [5, 0]


def test_stream_seeds_depend_on_seed_epoch_rank_and_stream() -> None:
    seeds = {stream_seed(s, e, r, k) for s in (0, 1) for e in (0, 1) for r in (0, 1) for k in (0, 1)}
    assert len(seeds) == 16
    assert stream_seed(0, 3, 1, 2) == stream_seed(0, 3, 1, 2)
    assert 0 <= stream_seed(-5, 0, 0, 0) < 2**63


def test_one_process_resume_is_exact(tmp_path: Path) -> None:
    """Stopping after one epoch and resuming equals running both epochs (one process)."""
    common = dict(epochs=2, steps=1, batch_size=256, device="cpu", checkpoint_dir=str(tmp_path))
    whole = train_config(DatasetName.DIGITS, Defense.PGD, run="whole", **common)
    parts = train_config(DatasetName.DIGITS, Defense.PGD, run="parts", **common)
    fit(whole, show_progress=False)
    fit(parts, stop_after_epochs=1, show_progress=False)
    assert read_checkpoint(tmp_path / "parts" / "last.pt")["epoch"] == 1
    fit(parts, resume=True, show_progress=False)
    _assert_same_training_state(_checkpoint(tmp_path / "whole" / "last.pt"), _checkpoint(tmp_path / "parts" / "last.pt"))


# --- training with two processes ----------------------------------------------------------------


@pytest.mark.slow  # 21 s measured on a loaded 2-core CPU (tests/README.md)
def test_two_process_training_writes_one_checkpoint_with_global_statistics(uninterrupted: Path) -> None:
    saved = _checkpoint(uninterrupted)
    assert saved["epoch"] == 2
    assert [h["processes"] for h in saved["history"]] == [2, 2]
    lines = (uninterrupted.parent / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert not list(uninterrupted.parent.glob(".*.tmp"))  # nothing half-written left behind
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


@pytest.fixture(scope="module")
def after_one_epoch(work: Path) -> Path:
    """The same run stopped by ``--stop-after-epochs 1``: a copy of its epoch-1 checkpoint."""
    _ok(_run(_torchrun(2, *TRAIN, "--run", "stopped", "--stop-after-epochs", "1"), work))
    last = work / "checkpoints" / "stopped" / "last.pt"
    assert _checkpoint(last)["epoch"] == 1
    copy = work / "epoch1" / "stopped" / "last.pt"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(last, copy)
    return last


@pytest.mark.slow  # 37 s measured on a loaded 2-core CPU (tests/README.md)
def test_stop_after_one_epoch_then_resume_matches_uninterrupted(
    work: Path, uninterrupted: Path, after_one_epoch: Path
) -> None:
    _ok(_run(_torchrun(2, *TRAIN, "--run", "stopped", "--resume"), work))
    _assert_same_training_state(_checkpoint(uninterrupted), _checkpoint(after_one_epoch))


@pytest.mark.slow  # its fixture: two torchrun trainings, 19 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_two_process_run_resumes_with_one_process(work: Path, after_one_epoch: Path) -> None:
    """Nothing in a checkpoint depends on the number of processes: any number may go on."""
    moved = work / "epoch1"
    result = CliRunner().invoke(app, ["train", "--run", "stopped", "--resume", "--checkpoint-dir", str(moved),
                                      "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    saved = _checkpoint(moved / "stopped" / "last.pt")
    assert saved["epoch"] == 2
    assert [h["processes"] for h in saved["history"]] == [2, 1]
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


@pytest.mark.slow  # 34 s measured on a loaded 2-core CPU (tests/README.md)
def test_sigkill_during_epoch_two_then_resume_matches_uninterrupted(work: Path, uninterrupted: Path) -> None:
    last = work / "checkpoints" / "killed" / "last.pt"
    proc = _start(_torchrun(2, *TRAIN, "--run", "killed"), work)
    _wait_for(last.exists, proc, "the checkpoint of epoch 1")
    workers = _children(proc.pid)
    assert len(workers) == 2
    for pid in workers:  # the whole job at once, as a node failure would: workers and torchrun
        os.killpg(pid, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    _finish(proc)
    assert _checkpoint(last)["epoch"] == 1, "the kill came after epoch 2 had finished"
    _ok(_run(_torchrun(2, *TRAIN, "--run", "killed", "--resume"), work))
    _assert_same_training_state(_checkpoint(uninterrupted), _checkpoint(last))


# --- sharded evaluation --------------------------------------------------------------------------


@pytest.mark.slow  # 17 s measured on a loaded 2-core CPU (tests/README.md)
def test_evaluation_does_not_depend_on_processes_or_batch_size(work: Path, uninterrupted: Path) -> None:
    common = ["evaluate", "--checkpoint", str(uninterrupted), "--n-examples", "101", "--steps", "3",
              "--alpha-test", "0,1.5", "--device", "cpu", "--quiet", "--results-dir", str(work / "eval")]
    _ok(_run([sys.executable, "-m", "wmrbench", *common, "--batch-size", "32", "--run", "one-b32"], work))
    two = _ok(_run(_torchrun(2, *common, "--batch-size", "7", "--run", "two-b7"), work))
    assert two.stdout.count("results:") == 1  # rank 0 alone reports
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses (OMP_NUM_THREADS=1)
    try:
        result = CliRunner().invoke(app, [*common, "--batch-size", "5", "--run", "one-b5"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output

    results = work / "eval"
    reference = (results / "one-b32" / "records.csv").read_text()
    assert len(reference.splitlines()) == 102
    assert [int(line.split(",")[0]) for line in reference.splitlines()[1:]] == list(range(101))
    metrics = json.loads((results / "one-b32" / "summary.json").read_text())["metrics"]
    expected = pd.read_csv(results / "one-b32" / "records.csv")
    margins = [c for c in expected.columns if "margin" in c]
    for run, processes in (("two-b7", 2), ("one-b5", 1)):
        got = pd.read_csv(results / run / "records.csv")
        # Every point, verdict and restart the same; a margin may differ in float32's last bit,
        # since a convolution over a batch of 7 or 5 may round otherwise than over 32 (seen on
        # this CPU's oneDNN kernels): the margins agree to 1e-6 and the metrics to 1e-4 points (1.3e-6 seen).
        pd.testing.assert_frame_equal(got.drop(columns=margins), expected.drop(columns=margins), obj=run)
        pd.testing.assert_frame_equal(got[margins], expected[margins], rtol=0, atol=1e-6, obj=run)
        summary = json.loads((results / run / "summary.json").read_text())
        for name, value in metrics.items():
            if isinstance(value, dict):
                assert summary["metrics"][name].keys() == value.keys(), run
                assert all(abs(summary["metrics"][name][k] - v) < 1e-4 for k, v in value.items()), (run, name, value, summary["metrics"][name])
            elif isinstance(value, float):
                assert abs(summary["metrics"][name] - value) < 1e-4, run
            else:
                assert summary["metrics"][name] == value, run
        assert summary["processes"] == processes


# --- errors: one line, non-zero exit, no hang ----------------------------------------------------


def test_batch_size_not_divisible_by_processes_is_one_line(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What torchrun tells each of its two processes; the check comes before any process group.
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, [*TRAIN, "--run", "odd", "--batch-size", "63", "--checkpoint-dir",
                                      str(work / "checkpoints")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: batch size 63 does not split evenly over 2 processes: use a --batch-size that is a "
        "multiple of 2 (the global batch) or another --nproc-per-node"
    )
    assert not (work / "checkpoints" / "odd").exists()


def test_more_processes_than_examples_is_one_line(
    work: Path, digits_runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What torchrun tells each of its two processes; the check comes before any process group.
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(digits_runs["trades-a0"]), "--n-examples", "1",
                                      "--device", "cpu", "--quiet", "--results-dir", str(work / "eval"),
                                      "--run", "tiny"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: 2 processes but only 1 examples to evaluate: every process needs at least one; "
        "use --nproc-per-node 1 or fewer"
    )
    assert not (work / "eval" / "tiny").exists()


@pytest.mark.slow  # 9 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_rank_that_raises_ends_the_job(work: Path) -> None:
    """Rank 0 cannot create its checkpoint folder; rank 1, already waiting for it, must not hang."""
    (work / "checkpoints").mkdir(exist_ok=True)
    (work / "checkpoints" / "blocked").write_text("a file where the run's folder should be")
    result = _run(_torchrun(2, *TRAIN, "--run", "blocked"), work)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: cannot create the checkpoint folder checkpoints/blocked: a file of that name is in the way"
    ], result.stderr[-3000:]


@pytest.mark.slow  # 23 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_rank_that_stops_answering_times_out_with_one_line(work: Path) -> None:
    """Rank 1 freezes (SIGSTOP) during epoch 2: rank 0's collective times out and the job ends."""
    last = work / "checkpoints" / "frozen" / "last.pt"
    # The collective timeout under test: long enough that no rank of a healthy run on a loaded
    # machine ever waits that long for the other (3 s could be reached starting up under load: the test
    # would then measure the machine), short enough to keep the test short.
    proc = _start(_torchrun(2, *TRAIN, "--run", "frozen"), work, WMRBENCH_DIST_TIMEOUT=str(DIST_TIMEOUT_S))
    _wait_for(last.exists, proc, "the checkpoint of epoch 1")
    ranks = {_rank_of(pid): pid for pid in _children(proc.pid)}
    assert set(ranks) == {0, 1}
    os.kill(ranks[1], signal.SIGSTOP)
    _wait_for(lambda: not _alive(ranks[0]), proc, "rank 0 to give up on rank 1")
    # torchrun now sends SIGTERM to rank 1, which a stopped process only receives once it is
    # continued (torchrun's fallback SIGKILL comes 30 s later): let it go on, so it can die.
    os.kill(ranks[1], signal.SIGCONT)
    returncode, _, err = _finish(proc)
    assert returncode != 0
    assert any(line.startswith("Error: lost contact with the other processes") and f"{DIST_TIMEOUT_S}s" in line
               for line in err.splitlines()), err[-3000:]
    assert _checkpoint(last)["epoch"] == 1  # the last complete checkpoint is intact


@pytest.mark.slow  # AutoAttack's four attacks, twice, on the CPU
@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-dlr", "autoattack"])
def test_sharded_evaluation_equals_one_process_for_every_attack(work: Path, uninterrupted: Path, attack: str) -> None:
    # Whole batches are shared out and every attack's randomness is keyed on the examples (APGD)
    # or reseeded per batch (AutoAttack), so two processes give one process's records.
    common = ["evaluate", "--checkpoint", str(uninterrupted), "--attack", attack, "--n-examples", "16",
              "--steps", "3", "--alpha-test", "1", "--batch-size", "8", "--device", "cpu", "--quiet",
              "--results-dir", str(work / "eval-attacks")]
    _ok(_run([sys.executable, "-m", "wmrbench", *common, "--run", f"{attack}-one"], work))
    _ok(_run(_torchrun(2, *common, "--run", f"{attack}-two"), work))
    results = work / "eval-attacks"
    one, two = (results / f"{attack}-{n}" for n in ("one", "two"))
    assert (two / "records.csv").read_text() == (one / "records.csv").read_text()
    assert json.loads((two / "summary.json").read_text())["metrics"] == json.loads((one / "summary.json").read_text())["metrics"]
