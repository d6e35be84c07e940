"""Shared fixtures: real data from ../shared/data (skipped, with the reason printed, when it is
absent), small real models, and real files in their on-disk formats, made once per session."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
MNIST_CHECKPOINT = SHARED_DATA / "models" / "trades_mnist_smallcnn.pt"

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# The checkout's own output folders: a user's results and checkpoints live there (the README's
# commands write them), so no test may read or write them.
CHECKOUT_OUTPUTS = (REPO / "results", REPO / "checkpoints")


def _snapshot(folders: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    """Every path under ``folders`` with its size and modification time."""
    seen = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")] if folder.exists() else []:
            info = path.lstat()
            seen[str(path)] = (info.st_size, info.st_mtime_ns)
    return seen


@pytest.fixture(scope="session", autouse=True)
def checkout_outputs_untouched():
    """Fails the session if any test changed the checkout's results/ or checkpoints/."""
    before = _snapshot(CHECKOUT_OUTPUTS)
    yield
    after = _snapshot(CHECKOUT_OUTPUTS)
    changed = sorted(set(before) ^ set(after) | {p for p in before.keys() & after.keys() if before[p] != after[p]})
    if changed:
        pytest.fail(f"tests changed the checkout's own output folders: {', '.join(changed[:5])}", pytrace=False)


@pytest.fixture(autouse=True)
def _outside_the_checkout(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in an empty folder of its own: a command's default, relative results/ and
    checkpoints/ land there, never in the checkout (nor in the test's own tmp_path)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def require_mnist() -> None:
    if not (MNIST_DIR / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file() or not MNIST_CHECKPOINT.is_file():
        pytest.skip(f"real MNIST data or checkpoint not found under {SHARED_DATA}")


@pytest.fixture
def mnist_model():
    require_mnist()
    from wmrbench.models.checkpoint import load_model_from_checkpoint

    model = load_model_from_checkpoint(MNIST_CHECKPOINT, "smallcnn", 10, 1)
    return model.eval()


@pytest.fixture
def mnist_test():
    require_mnist()
    from wmrbench.core.config import DatasetName
    from wmrbench.data import load_split

    return load_split(DatasetName.MNIST, str(MNIST_DIR), train=False)


@pytest.fixture
def digits_model():
    """A digits model with random weights and BatchNorm-free layers (deterministic, fast)."""
    from wmrbench.models import create_model

    torch.manual_seed(0)
    return create_model("digitsnet", 10, 1).eval()


@pytest.fixture
def digits_test():
    from wmrbench.core.config import DatasetName
    from wmrbench.data import load_split

    return load_split(DatasetName.DIGITS, "", train=False)


from wmrbench.cli.app import app
from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.presets import train_config
from wmrbench.training import fit

# A ResNet-18 entry of RobustBench's cifar10/Linf zoo: a small architecture keeps CPU time low.
ZOO_ID = "Sehwag2021Proxy_R18"


def invoke(*args: str, env: dict[str, str] | None = None):
    """The real Typer app, in process; stdout and stderr kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two briefly trained wmrbench checkpoints on digits: TRADES and TRADES+ours (alpha_train 2)."""
    root = tmp_path_factory.mktemp("digits-checkpoints")
    runs = {}
    for alpha in (0.0, 2.0):
        cfg = train_config(
            DatasetName.DIGITS, Defense.TRADES, run=f"trades-a{alpha:g}", alpha_train=alpha, epochs=2,
            steps=2, milestones=(), checkpoint_dir=str(root), device="cpu", seed=0,
        )
        runs[cfg.run] = fit(cfg, show_progress=False).checkpoint
    return runs


@pytest.fixture(scope="session")
def digits_results(tmp_path_factory: pytest.TempPathFactory, digits_runs: dict[str, Path]) -> Path:
    """A results folder with real `wmrbench evaluate` outputs for both digits runs."""
    results = tmp_path_factory.mktemp("digits-results")
    for checkpoint in digits_runs.values():
        out = invoke("evaluate", "--checkpoint", checkpoint, "--n-examples", "60", "--steps", "3",
                     "--alpha-test", "0,1,2", "--results-dir", results, "--quiet")
        assert out.exit_code == 0, out.output
    return results


def write_cifar10_test_batch(data_dir: Path, n: int = 4, seed: int = 0) -> Path:
    """CIFAR-10's real on-disk format: cifar-10-batches-py/test_batch, a pickled dict of bytes keys."""
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    path = data_dir / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """RobustBench's cache layout holding a freshly initialised checkpoint of a real zoo id."""
    from wmrbench.core.compat import robustbench_api

    api = robustbench_api()
    entry = api.model_dicts[api.BenchmarkDataset("cifar10")][api.ThreatModel("Linf")][ZOO_ID]
    torch.manual_seed(0)
    state = entry["model"]().state_dict()
    model_dir = tmp_path_factory.mktemp("zoo")
    path = model_dir / "cifar10" / "Linf" / f"{ZOO_ID}.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return model_dir, state


@pytest.fixture(scope="session")
def cifar10_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cifar10")
    write_cifar10_test_batch(data_dir)
    return data_dir


# --- helpers of the reliability tests (tests/cli/test_reliability_*.py) ----------------------------------

PYTHON = sys.executable
# The lines a command logs as it goes (an epoch; an evaluation's batch when stderr is not a terminal)
EPOCH_LINE = re.compile(r"epoch \d+/\d+  loss |.*: \d+/\d+ examples \(\d+%\), \d+\.\ds$")


def assert_one_line_error(out, *fragments: str, code: int = 2) -> str:
    """A CLI result (CliRunner's or a subprocess's) that failed as wmrbench promises: exit ``code``,
    exactly one non-empty line on stderr, ``Error: ...``, no traceback; returns that line.

    The epoch lines of the epochs that finished before the error also go to stderr (so that
    a redirected log has them): they are not part of the error and are left out here."""
    exit_code = out.exit_code if hasattr(out, "exit_code") else out.returncode
    stderr = out.stderr
    stdout = out.stdout
    lines = [line for line in stderr.splitlines() if line.strip() and not EPOCH_LINE.match(line)]
    assert exit_code == code, f"exit {exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"stderr: {stderr}"
    assert "Traceback" not in stdout + stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# No test waits on the clock: each waits for an event (a file appears, a line is printed, a process
# exits), however slow the machine. HANG_S is only a safety net against a process that hangs
# forever, far above any run's time on a loaded machine; it fails with a message that says so.
# pytest-timeout's global net (pyproject.toml) is above it, for a hang in the test itself.
HANG_S = 1800


def hung(what: str) -> str:
    """The failure message of a safety net (HANG_S) that fired: a hang, not a slow machine."""
    return f"{what} still running after {HANG_S} s: it hangs (the tests wait for events, never for speed)"


def wait_until(predicate: Callable[[], bool], what: str, proc: subprocess.Popen | None = None) -> None:
    """Return once ``predicate()`` holds; fail at once, with the process's stderr, if ``proc`` exits
    before it does. No deadline: the event comes or the process ends (a hang meets pytest-timeout)."""
    while not predicate():
        if proc is not None and proc.poll() is not None and not predicate():
            err = proc.stderr.read() if proc.stderr is not None else ""
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}: {err[-3000:]}", pytrace=False)
        time.sleep(0.01)  # a poll interval, not a deadline


def run_wmrbench(*args: str, cwd: Path, timeout: float = HANG_S, **kwargs) -> subprocess.CompletedProcess:
    """``python -m wmrbench ARGS`` as a user starts it: a real process of its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([PYTHON, "-m", "wmrbench", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def files_under(root: Path) -> set[str]:
    """Every file and folder under ``root``, relative (what a command left on disk)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}
