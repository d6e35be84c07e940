"""benchmarks/gpu/job.sh --dry-run: the prepared GPU job runs end to end on the CPU at tiny sizes
(install skipped), writes what it copies back, and a second call continues from the first's state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from tests.conftest import HANG_S, REPO

JOB = REPO / "benchmarks" / "gpu" / "job.sh"


def _job(tmp_path: Path, out: Path, carry: Path) -> subprocess.CompletedProcess:
    # One table1 invocation (one epoch of the two) per call: the second call must continue from
    # the first's checkpoints, whatever the machine's speed. The job time-boxes every step for the
    # device's window; here the boxes are far above any run's time (a hang still meets HANG_S).
    env = {**os.environ, "OUT": str(out), "JOB_WORK": str(tmp_path / "work"), "CARRY": str(carry),
           "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TABLE1_CALLS": "1",
           "STEP_SCALE": "100", "BUDGET_S_DRY": str(100 * HANG_S)}
    return subprocess.run(["bash", str(JOB), "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=HANG_S)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_the_gpu_job_runs_dry_on_the_cpu_and_continues_from_its_state(tmp_path):
    out, carry = tmp_path / "out1", tmp_path / "carry"
    done = _job(tmp_path, out, carry)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (out / "job.log").read_text()
    assert "cuda-tests: exit 0" in log and "benchmark: exit 0" in log, log[-3000:]
    bench = json.loads((out / "bench.json").read_text())
    variants = {row["variant"] for row in bench["rows"]}
    assert {"1 run alone (TRADES+ours)", "4 runs one after another", "4 runs stacked, vmap (impl vmap)"} <= variants
    runs = _trained(out / "state.tar.gz")
    assert sorted(runs.values()) == [1, 1, 1, 1] and all(r.startswith("table1-digits-") for r in runs), runs
    assert "table1: exit 0" in log, log[-3000:]

    # A later call continues from the state carried back: the second epoch, then the evaluation.
    carry.mkdir()
    shutil.copy(out / "state.tar.gz", carry / "state.tar.gz")
    shutil.rmtree(tmp_path / "work")
    again = _job(tmp_path, tmp_path / "out2", carry)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log2 = (tmp_path / "out2" / "job.log").read_text()
    assert "restored the earlier call's checkpoints" in log2 and "resuming at epoch 2 of 2" in log2, log2[-3000:]
    assert sorted(_trained(tmp_path / "out2" / "state.tar.gz").values()) == [2, 2, 2, 2]
    with tarfile.open(tmp_path / "out2" / "state.tar.gz") as archive:
        assert any(n.endswith("table1.md") for n in archive.getnames())


def _trained(state: Path) -> dict[str, int]:
    """Each run in a state archive and the epochs its last.pt holds."""
    found = {}
    with tarfile.open(state) as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            if parts[0] == "checkpoints" and parts[-1] == "last.pt":
                saved = torch.load(archive.extractfile(member), weights_only=True)
                found[parts[1]] = int(saved["epoch"])
    return found
