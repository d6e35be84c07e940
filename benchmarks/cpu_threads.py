"""CPU threads under load: the demo's training epoch and one small evaluation, with 1 and 2 torch
threads, on an idle(-ish) machine and under a load this script makes itself.

Each measurement is a fresh ``python -m wmrbench --threads T ...`` process, as a user runs it
(OMP_NUM_THREADS and MKL_NUM_THREADS are removed from its environment, so --threads alone
decides). The load is ``--load`` busy Python processes (``while True: pass``), started before
and stopped after each loaded measurement. The 1-minute load average is read before and after
each one: on a shared machine "idle" only means "without our load", and the JSON says how busy
the machine was.

* train: ``train --dataset digits --defense trades`` with the demo's preset (digitsnet, 10-step
  TRADES attack, batch 64), one epoch; the epoch's seconds as the epoch line prints them.
* evaluate: ``evaluate`` of that checkpoint on ``--n-examples`` digits test images (PGD-20 and
  weighted PGD at alpha 1, 1.5, 2); the summary's ``seconds`` (the evaluation, without start-up).

    python benchmarks/cpu_threads.py --quick --out benchmarks/reference/cpu-quick/cpu_threads.json
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, environment, median, parser, print_table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EPOCH = re.compile(r"epoch 1/1 .* ([\d.]+)s")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "WMRBENCH_THREADS")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _wmrbench(threads: int, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wmrbench", "--threads", str(threads), *args], env=_env(),
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"wmrbench {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc, wall


def train_epoch(threads: int, work: Path, run: str) -> dict[str, float]:
    proc, wall = _wmrbench(threads, "train", "--dataset", "digits", "--defense", "trades", "--epochs", "1",
                           "--run", run, "--checkpoint-dir", str(work / "ck"), "--device", "cpu", "--quiet")
    match = EPOCH.search(proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    return {"seconds": float(match.group(1)), "wall": wall}


def evaluate(threads: int, work: Path, checkpoint: Path, run: str, n: int) -> dict[str, float]:
    _, wall = _wmrbench(threads, "evaluate", "--checkpoint", str(checkpoint), "--n-examples", str(n), "--run", run,
                        "--results-dir", str(work / "results"), "--device", "cpu", "--quiet")
    summary = json.loads((work / "results" / run / "summary.json").read_text())
    return {"seconds": float(summary["seconds"]), "wall": wall}


class Load:
    """``n`` busy processes while the body runs (none when n is 0)."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self) -> Load:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        if self.procs:
            time.sleep(2.0)  # let the scheduler see them
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc in self.procs:  # only the processes started here, by their own handles
            proc.kill()
            proc.wait()


def main() -> None:
    p = parser("cpu_threads", __doc__.splitlines()[0])
    p.add_argument("--load", type=int, default=2, help="busy processes for the loaded runs (default 2)")
    p.add_argument("--threads", default="1,2", help="torch thread counts to compare (default 1,2)")
    p.add_argument("--n-examples", type=int, default=200, help="test images of the evaluation (default 200)")
    args = p.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    counts = [int(t) for t in args.threads.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wmrbench-threads-") as tmp:
        work = Path(tmp)
        train_epoch(1, work, "base")  # the checkpoint every evaluation scores
        checkpoint = work / "ck" / "base" / "last.pt"
        k = 0
        for repeat in range(repeats):  # alternate: idle/loaded x threads, so drift hits all alike
            for busy in (0, args.load):
                for threads in counts:
                    with Load(busy):
                        before = os.getloadavg()[0]
                        t = train_epoch(threads, work, f"t{k}")
                        e = evaluate(threads, work, checkpoint, f"e{k}", args.n_examples)
                        after = os.getloadavg()[0]
                    k += 1
                    rows.append({"repeat": repeat, "load": busy, "threads": threads, "train_epoch_s": t["seconds"],
                                 "train_wall_s": t["wall"], "eval_s": e["seconds"], "eval_wall_s": e["wall"],
                                 "loadavg_1min_before": before, "loadavg_1min_after": after})
                    print(rows[-1], flush=True)
    table = []
    for busy in (0, args.load):
        for threads in counts:
            mine = [r for r in rows if r["load"] == busy and r["threads"] == threads]
            table.append({"load (busy procs)": busy, "threads": threads,
                          "train epoch s (median)": median([r["train_epoch_s"] for r in mine]),
                          "eval s (median)": median([r["eval_s"] for r in mine]),
                          "loadavg 1min": median([(r["loadavg_1min_before"] + r["loadavg_1min_after"]) / 2 for r in mine])})
    print_table(table, f"digits TRADES epoch and a {args.n_examples}-image evaluation, {os.cpu_count()} cores")
    write_result(args, "cpu_threads", {
        "command": command_line(), "environment": environment(torch.device("cpu")), "cores": os.cpu_count(),
        "settings": {"load": args.load, "threads": counts, "n_examples": args.n_examples, "repeats": repeats},
        "note": "the machine is shared with other jobs: loadavg_1min says how busy it was besides our own load",
        "rows": rows, "table": table,
    })


if __name__ == "__main__":
    main()
