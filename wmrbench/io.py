"""File I/O with two promises: writes are atomic, and torch files are read safely.

Atomic: write to a temporary name in the same folder, fsync, then rename; a reader (or a
resumed run) sees either the old file or the complete new one, never a torn one.

Safe: every torch file wmrbench reads (checkpoints, zoo files, adversarial files, data caches)
goes through :func:`safe_torch_load`, ``torch.load(..., weights_only=True)``, which rebuilds
tensors and plain containers only and never runs code from the file.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from wmrbench.errors import WmrbenchError, first_line


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere reading it means setting it and
    setting it straight back (a tiny window in which another thread's new file would get 0)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; a result or checkpoint gets the mode any new file would
        # get under the user's umask (group-readable where the umask allows it).
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda h: h.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, lambda h: torch.save(obj, h))


def _unpickler_detail(exc: BaseException) -> str:
    """The line of torch's long weights_only message that says what was wrong."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """A torch file (``what`` names it in messages) read with weights_only=True; a dict at top level.

    Failures are one line: a missing file, a file that holds Python objects (refused), and a
    corrupt or foreign file (e.g. an HTML page where a download should be).
    """
    path = Path(path)
    if not path.is_file():
        raise WmrbenchError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Every message of torch's weights_only unpickler mentions weights_only; only a disallowed
        # global means Python objects. Anything else is a corrupt file.
        if "Unsupported global" in str(exc):
            raise WmrbenchError(
                f"refusing to load {path}: it holds Python objects, not only tensors "
                "(checkpoints are read with weights_only=True)"
            ) from None
        raise WmrbenchError(f"cannot read {what} {path}: corrupt or not a PyTorch file ({_unpickler_detail(exc)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WmrbenchError(f"cannot read {what} {path}: corrupt or not a PyTorch file ({first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise WmrbenchError(f"cannot read {what} {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj
