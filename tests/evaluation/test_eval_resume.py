"""Resumable evaluation, and the progress of each attack stage.

``evaluate`` saves each finished batch in ``results/<run>/.partial/`` (keyed by the batch's global
number, beside a manifest of the settings, the model and the data); ``evaluate --resume``
continues from them and must write the records.csv and the metrics of an uninterrupted run,
byte for byte. The runs that are compared are real processes started as a user starts them
(``python -m wmrbench evaluate ...``), killed with a real SIGKILL in the middle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import HANG_S, PYTHON, REPO, assert_one_line_error, files_under, invoke, wait_until
from wmrbench.core.attack_config import AttackConfig, AttackMethod
from wmrbench.core.config import DatasetName
from wmrbench.evaluation import evaluate_model
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.core.presets import eval_config

# 64 examples in 8 batches of 8: long enough (a second or two) to be killed in the middle.
EVAL = ("--n-examples", "64", "--batch-size", "8", "--steps", "10", "--alpha-test", "0,1", "--device", "cpu",
        "--quiet", "--results-dir", "results")
N_BATCHES = 8


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def wmrbench(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m wmrbench ARGS`` in a process of its own; it must succeed."""
    out = subprocess.run([PYTHON, "-m", "wmrbench", *map(str, args)], cwd=cwd, env=_env(), capture_output=True,
                         text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def kill_after_first_batch(*args: object, cwd: Path, folder: Path) -> None:
    """Start ``python -m wmrbench ARGS``, SIGKILL it once it has saved a batch and before it ends."""
    proc = subprocess.Popen([PYTHON, "-m", "wmrbench", *map(str, args)], cwd=cwd, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bool(list((folder / ".partial").glob("batch-*.pt"))), "saving a batch", proc)
        assert proc.poll() is None, "it finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stderr.close()


def metrics(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, digits_runs: dict[str, Path]) -> Path:
    """A working folder whose results/ holds ``whole`` (an uninterrupted evaluation) and
    ``killed`` (the same evaluation, SIGKILLed after its first saved batch)."""
    work = tmp_path_factory.mktemp("stopped")
    checkpoint = digits_runs["trades-a0"]
    wmrbench("evaluate", "--checkpoint", checkpoint, *EVAL, "--run", "whole", cwd=work)
    killed = work / "results" / "killed"
    kill_after_first_batch("evaluate", "--checkpoint", checkpoint, *EVAL, "--run", "killed", cwd=work, folder=killed)
    return work


@pytest.fixture
def work(stopped: Path, tmp_path: Path) -> Path:
    """A private copy of ``stopped`` (tests change it)."""
    return Path(shutil.copytree(stopped, tmp_path / "work"))


def partial_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / ".partial").iterdir())}


@pytest.mark.slow  # 5 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_killed_run_leaves_saved_batches_and_no_result(work: Path) -> None:
    killed = work / "results" / "killed"
    assert not (killed / "summary.json").exists() and not (killed / "records.csv").exists()
    saved = sorted(p.name for p in (killed / ".partial").glob("batch-*.pt"))
    assert 1 <= len(saved) < N_BATCHES and saved[0] == "batch-000000.pt"
    manifest = json.loads((killed / ".partial" / "manifest.json").read_text())
    assert manifest["n_batches"] == N_BATCHES and manifest["config"]["attack"]["steps"] == 10
    # Plain tensors, readable with weights_only=True: the first batch's examples, in order.
    batch = torch.load(killed / ".partial" / "batch-000000.pt", weights_only=True)
    assert torch.equal(batch["columns"]["index"], torch.arange(8))
    assert not (work / "results" / "whole" / ".partial").exists()  # gone once the result is written


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_resume_with_the_command_leaderboard_prints_gives_the_uninterrupted_result(work: Path, monkeypatch) -> None:
    monkeypatch.chdir(work)
    results = work / "results"
    board = invoke("leaderboard", "results")
    warnings = [line for line in board.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: skipped results/killed: an unfinished evaluation")
    command = shlex.split(warnings[0].split("`")[1])
    assert command[:2] == ["wmrbench", "evaluate"] and command[-1] == "--resume"

    wmrbench(*command[1:], "--quiet", cwd=work)  # the settings come from the saved manifest

    whole, killed = results / "whole", results / "killed"
    assert (killed / "records.csv").read_bytes() == (whole / "records.csv").read_bytes()
    assert metrics(killed) == metrics(whole)
    assert not (killed / ".partial").exists()
    board = invoke("leaderboard", "results")
    assert board.stderr.strip() == "" and "killed" in board.stdout


@pytest.mark.slow  # its fixture: two evaluations in processes of their own, one killed: 23 s measured on a loaded 2-core CPU (tests/README.md)
def test_an_unfinished_run_is_refused_without_resume_and_overwrite_starts_over(work: Path, digits_runs, monkeypatch):
    monkeypatch.chdir(work)
    killed = work / "results" / "killed"
    before = partial_files(killed)
    args = ("evaluate", "--checkpoint", digits_runs["trades-a0"], *EVAL, "--run", "killed")
    assert_one_line_error(invoke(*args), "results/killed holds an unfinished evaluation (", " of 8 batches done)",
                          "pass --resume to continue it, or --overwrite to start over")
    assert partial_files(killed) == before

    # A saved batch that is not what it should be: --resume names it, --overwrite never reads it.
    (killed / ".partial" / "batch-000000.pt").write_bytes(b"not a torch file")
    assert_one_line_error(invoke(*args, "--resume"), "batch-000000.pt", "corrupt")
    out = invoke(*args, "--overwrite")
    assert out.exit_code == 0, out.output
    assert not (killed / ".partial").exists()
    records = (killed / "records.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in records[1:]] == list(range(64))


@pytest.mark.slow  # its fixture: two evaluations in processes of their own, one killed: 23 s measured on a loaded 2-core CPU (tests/README.md)
def test_resume_with_other_settings_weights_or_flags_is_refused_by_name(work: Path, digits_runs, monkeypatch):
    monkeypatch.chdir(work)
    killed = work / "results" / "killed"
    before = partial_files(killed)
    model = ("--checkpoint", digits_runs["trades-a0"], "--run", "killed", "--resume", "--quiet")
    assert_one_line_error(invoke("evaluate", *model, "--steps", "5"),
                          "--resume: results/killed was started with other settings (--steps 10 there, 5 now)",
                          "drop those options to continue it, or pass --overwrite to start over")
    assert_one_line_error(invoke("evaluate", *model, "--alpha-test", "1", "--batch-size", "16"),
                          "(--alpha-test 0,1 there, 1 now; --batch-size 8 there, 16 now)")
    assert_one_line_error(invoke("evaluate", *model, "--attack", "apgd-ce"), "--attack pgd there, apgd-ce now")
    other = ("--checkpoint", digits_runs["trades-a2"], "--run", "killed", "--resume", "--quiet")
    assert_one_line_error(invoke("evaluate", *other), "was started on other weights")
    assert_one_line_error(invoke("evaluate", *model, "--overwrite"), "give one of them")
    assert_one_line_error(invoke("evaluate", "--adversarial", work / "adv.pt", "--resume"), "drop --resume")
    assert_one_line_error(invoke("evaluate", *model[:2], "--run", "whole", "--resume"),
                          "results/whole holds no unfinished evaluation to continue (its result is complete")
    assert partial_files(killed) == before
    # Where things are may change: another results folder (a copy) and a device of the same kind.
    shutil.copytree(work / "results", work / "moved")
    out = invoke("evaluate", *model, "--results-dir", "moved", "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert not (work / "moved" / "killed" / ".partial").exists()
    assert partial_files(killed) == before


@pytest.mark.slow  # its fixture: two evaluations in processes of their own, one killed: 23 s measured on a loaded 2-core CPU (tests/README.md)
def test_leaderboard_and_plot_skip_an_unfinished_run_and_name_the_command(work: Path) -> None:
    for command in ("leaderboard", "plot"):
        out = invoke(command, work / "results")
        assert out.exit_code == 0, out.output
        warnings = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(warnings) == 1, out.stderr
        assert f"skipped {work / 'results' / 'killed'}: an unfinished evaluation" in warnings[0]
        assert "--run killed --results-dir results --resume`" in warnings[0]
    assert "whole" in invoke("leaderboard", work / "results").stdout
    assert not any("killed" in name for name in files_under(work / "results" / "plots"))
    shutil.rmtree(work / "results" / "whole")
    assert_one_line_error(invoke("leaderboard", work / "results"), "no summary.json under",
                          "an unfinished evaluation", "--resume`")


@pytest.mark.slow  # torchrun: two processes on two cores
def test_a_run_killed_with_one_process_resumes_with_two(work: Path, digits_runs) -> None:
    """Batches are keyed on their global number: any number of processes may go on."""
    cmd = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "wmrbench", "--",
           "evaluate", "--checkpoint", str(digits_runs["trades-a0"]), "--run", "killed", "--resume", "--quiet"]
    out = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = work / "results"
    assert (results / "killed" / "records.csv").read_bytes() == (results / "whole" / "records.csv").read_bytes()
    assert metrics(results / "killed") == metrics(results / "whole")
    assert json.loads((results / "killed" / "summary.json").read_text())["processes"] == 2


# --- AutoAttack -------------------------------------------------------------------------------------

# At eps 0.3 APGD-CE breaks every digit, so AutoAttack stops there: quick. Its random starts
# still decide every margin in the records, so any dependence on the batches before shows.
AUTOATTACK = ("--n-examples", "8", "--batch-size", "4", "--attack", "autoattack", "--eps", "0.3", "--steps", "5",
              "--alpha-test", "1", "--device", "cpu", "--quiet", "--results-dir", "results")


@pytest.mark.slow  # 7 s measured on a loaded 2-core CPU (tests/README.md)
def test_an_autoattack_batch_does_not_depend_on_the_calls_before_it(digits_runs, digits_test) -> None:
    """pyautoattack reseeds the global RNG at each of its attacks, and the adapter restores it: a
    batch attacked first, after another batch, or after the global RNG moved, gives the same points."""
    from wmrbench import attacks

    model = load_model_from_checkpoint(digits_runs["trades-a0"], "digitsnet", 10, 1).eval()
    cfg = AttackConfig(eps=0.2, step_size=0.01, steps=5)
    first, second = torch.arange(0, 4), torch.arange(4, 8)
    alone = attacks.autoattack(model, digits_test.images(second), digits_test.y[second], cfg, seed=0)
    attacks.autoattack(model, digits_test.images(first), digits_test.y[first], cfg, seed=0)
    torch.rand(1000)
    after = attacks.autoattack(model, digits_test.images(second), digits_test.y[second], cfg, seed=0)
    assert torch.equal(alone.x_adv, after.x_adv) and torch.equal(alone.logits, after.logits)
    assert not torch.equal(alone.x_adv, digits_test.images(second))  # it did attack


@pytest.mark.slow  # 8 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_killed_autoattack_evaluation_resumes_to_the_same_result(tmp_path: Path, digits_runs) -> None:
    checkpoint = digits_runs["trades-a0"]
    wmrbench("evaluate", "--checkpoint", checkpoint, *AUTOATTACK, "--run", "whole", cwd=tmp_path)
    killed = tmp_path / "results" / "killed"
    kill_after_first_batch("evaluate", "--checkpoint", checkpoint, *AUTOATTACK, "--run", "killed", cwd=tmp_path,
                           folder=killed)
    assert not (killed / "summary.json").exists()
    wmrbench("evaluate", "--checkpoint", checkpoint, "--run", "killed", "--resume", "--quiet", cwd=tmp_path)
    whole = tmp_path / "results" / "whole"
    assert (killed / "records.csv").read_bytes() == (whole / "records.csv").read_bytes()
    assert metrics(killed) == metrics(whole)


# --- progress ---------------------------------------------------------------------------------------


class Recorder:
    """Stands in for rich's Progress: keeps every text the bar shows."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.completed = 0

    def add_task(self, description: str, total: int, info: str = "") -> int:
        self.total = total
        return 0

    def update(self, task: int, info: str = "", **kwargs) -> None:
        self.shown.append(info)

    def advance(self, task: int, n: int) -> None:
        self.completed += n


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    import wmrbench.evaluation.pipeline as pipeline

    bar = Recorder()
    real = pipeline.progress_bar

    @contextlib.contextmanager
    def progress_bar(enabled: bool = True):
        if enabled:
            yield bar
        else:
            with real(enabled=False) as none:
                yield none

    monkeypatch.setattr(pipeline, "progress_bar", progress_bar)
    return bar


@pytest.mark.slow  # 8 s measured on a loaded 2-core CPU (tests/README.md)
def test_the_bar_names_each_stage_and_the_running_robust_accuracy(recorder, digits_runs, digits_test) -> None:
    model = load_model_from_checkpoint(digits_runs["trades-a0"], "digitsnet", 10, 1).eval()
    cfg = eval_config(DatasetName.DIGITS, "r", steps=3, alpha_test=(0.0, 1.0), batch_size=4, n_examples=8,
                      device="cpu", eps=0.2)
    records = evaluate_model(model, digits_test.subset(8), cfg)
    stages = [text.split("  ")[0] for text in recorder.shown if not text.startswith("robust")]
    assert stages[:3] == ["clean", "pgd", "weighted pgd, alpha 0, 1"] and stages[3:6] == stages[:3]
    robust = records["pgd_correct"].to_numpy()
    assert recorder.shown[-1] == f"robust {100 * robust.mean():.2f}% so far"
    assert f"robust {100 * robust[:4].mean():.2f}% so far" in recorder.shown[3]  # after the first batch
    assert recorder.completed == recorder.total == 8

    recorder.shown.clear()
    cfg = eval_config(DatasetName.DIGITS, "r", steps=2, alpha_test=(1.0,), batch_size=4, n_examples=4, device="cpu",
                      eps=0.05, method=AttackMethod.AUTOATTACK)
    aa = evaluate_model(model, digits_test.subset(4), cfg)
    assert aa["pgd_correct"].all()  # nothing broken early: every one of its attacks ran
    assert recorder.shown[:-1] == ["clean", "autoattack", "autoattack apgd-ce", "autoattack apgd-t", "autoattack fab-t",
                                   "autoattack square", "weighted apgd-ce, alpha 1"]
    assert recorder.shown[-1] == "robust 100.00% so far"


def test_quiet_shows_no_bar(recorder, digits_runs, digits_test) -> None:
    model = load_model_from_checkpoint(digits_runs["trades-a0"], "digitsnet", 10, 1).eval()
    cfg = eval_config(DatasetName.DIGITS, "r", steps=1, alpha_test=(1.0,), batch_size=4, n_examples=8, device="cpu")
    evaluate_model(model, digits_test.subset(8), cfg, show_progress=False)
    assert recorder.shown == []

