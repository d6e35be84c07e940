"""Device, precision and provenance helpers shared by training and evaluation."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from wmrbench.core.attack_config import Precision
from wmrbench.core.errors import WmrbenchError, render_settings, setting


def parse_device(device: str) -> torch.device:
    """The device a name means here: 'auto' -> cuda when present, else cpu; anything else must
    name a device torch can run wmrbench on in this process (cpu; cuda or cuda:N with that GPU
    present; mps where it is available), else one line. (Under torchrun,
    :func:`wmrbench.core.distributed.resolve_device` then picks this process's GPU.)"""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise WmrbenchError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise WmrbenchError(f"device {device!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise WmrbenchError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) are visible here"
            )
        return dev
    if dev.type == "mps" and torch.backends.mps.is_available():
        return dev
    raise WmrbenchError(f"device {device!r} cannot run wmrbench here; use auto, cpu, cuda or cuda:N")


THREADS_ENV = "WMRBENCH_THREADS"
MAX_DEFAULT_THREADS = 4


def default_threads(cores: int | None = None) -> int:
    """torch's intra-op threads when nothing says otherwise: half the cores, at least 1, at most 4.

    Why not torch's own default (every core): on a 2-core machine that other jobs share, torch's
    two threads wait on each other at every operator. Measured (benchmarks/cpu_threads.py,
    benchmarks/reference/cpu-quick/cpu_threads.json, a 2-core machine that other jobs shared):
    the demo's epoch took 22.2 s with 1 thread and 194 s with 2; under 2 more busy processes,
    22.9 s and 419 s. Leaving half
    the cores free keeps that margin on larger machines; the cap of 4 is a choice for wmrbench's
    small models, not a measurement (use --threads for a large model on an idle machine).
    """
    cores = cores if cores is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, min(MAX_DEFAULT_THREADS, cores // 2))


def resolve_threads(threads: int | None) -> tuple[int, str]:
    """(the thread count, where it came from): ``--threads``, else $WMRBENCH_THREADS, else
    $OMP_NUM_THREADS (torch's own variable, respected when a user or scheduler set it), else
    :func:`default_threads`. A value that is not an integer >= 1 is one line."""
    for value, source in ((threads, render_settings(setting("threads"))), (os.environ.get(THREADS_ENV), THREADS_ENV),
                          (os.environ.get("OMP_NUM_THREADS"), "OMP_NUM_THREADS")):
        if value is None or value == "":
            continue
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if count < 1:
            raise WmrbenchError(f"{source} must be an integer >= 1; got {value!r}")
        return count, source
    return default_threads(), "default"


def apply_threads(threads: int | None = None, cores: int | None = None) -> int:
    """Set torch's intra-op threads at the start of a command (see :func:`resolve_threads`).

    More threads than cores only make them wait on each other (benchmarks/README.md, "CPU threads"): such a
    count is capped at the cores, with one line on stderr that says so."""
    count, source = resolve_threads(threads)
    cores = cores or os.cpu_count() or 1
    if count > cores:
        print(f"note: {source} {count} is more than this machine's {cores} cores; using {cores} threads",
              file=sys.stderr)
        count = cores
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """bf16 autocast when bf16 is asked for, on CUDA or on the CPU (CPU autocast supports bf16);
    None (plain fp32) otherwise. bf16 is only the default on CUDA (``presets.default_precision``):
    an explicit ``--precision bf16`` on the CPU is honoured, never silently dropped."""
    return torch.bfloat16 if precision is Precision.BF16 else None


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to the device; channels_last on CUDA, where cuDNN's fastest convolutions want it."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """What every result file records about the software that made it."""
    from wmrbench import __version__

    info: dict[str, Any] = {
        "wmrbench": __version__,
        "torch": str(torch.__version__),  # TorchVersion is not a plain str: weights_only rejects it
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "torch_threads": torch.get_num_threads(),  # CPU speed depends on it (see apply_threads)
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info
