"""What every benchmark shares: options, devices, synchronised timing, alternating runs, the
environment record, tables and the JSON result.

Timing rules: each variant runs once untimed first (allocator, cuDNN/oneDNN set-up, CUDA graph
capture, compilation); timed runs then alternate between variants (A B C A B C ...) so that a
slow phase of a shared machine hits every variant alike; a variant's time is the median of its
runs, and a ratio is the ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python benchmarks/x.py` from a source checkout
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from wmrbench.core.io import atomic_write_json  # noqa: E402
from wmrbench.core.runtime import provenance  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: under 2 minutes on a 2-core CPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per variant (default 5)")
    p.add_argument("--out", default=None, help=f"JSON result path (default benchmarks/results/{name}.json)")
    return p


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    started = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - started, out


def alternate(
    variants: dict[str, Callable[[], Any]], repeats: int, device: torch.device,
    warmups: dict[str, Callable[[], Any]] | None = None, log: bool = True,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Warm every variant up, then ``repeats`` rounds of A B C ...; times and last outputs."""
    for name, fn in variants.items():
        seconds, _ = timed((warmups or {}).get(name, fn), device)
        if log:
            print(f"  warm-up {name}: {seconds:.2f}s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, Any] = {}
    for round_ in range(repeats):
        for name, fn in variants.items():
            seconds, outputs[name] = timed(fn, device)
            times[name].append(seconds)
        if log:
            print(f"  round {round_ + 1}/{repeats}: " + "  ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()), flush=True)
    return times, outputs


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} logical cores, torch threads {torch.get_num_threads()})"


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device_name(device), "device_type": device.type, **provenance()}
    if info.get("git_commit") is None:  # a copy of the tree without .git (e.g. on a rented GPU)
        info["git_commit"] = os.environ.get("WMRBENCH_GIT_COMMIT")
    for package in ("torchattacks", "pyautoattack"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # not installed: the peer is then skipped and says so
            info[package] = None
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        info["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return info


def write_result(args: argparse.Namespace, name: str, payload: dict[str, Any]) -> Path:
    path = Path(args.out) if args.out else RESULTS_DIR / f"{name}.json"
    atomic_write_json(path, payload)
    print(f"wrote {path}")
    return path


def print_table(rows: list[dict[str, Any]], title: str) -> str:
    text = tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4g")
    print(f"\n{title}\n{text}\n", flush=True)
    return text


def command_line() -> str:
    return "python " + " ".join(sys.argv)
