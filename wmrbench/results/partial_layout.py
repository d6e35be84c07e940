"""The ``RESULTS_DIR/RUN/.partial/`` layout of an unfinished evaluation, as its readers see it:
the names, the saved batches, whether a folder holds an unfinished result and the command that
finishes it. :mod:`wmrbench.evaluation.partial` writes and resumes it (and re-exports these names);
the reports read it from here, so that they never import the evaluation package.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmrbench.results.records import SUMMARY_NAME

PARTIAL_DIR, MANIFEST_NAME = ".partial", "manifest.json"
BATCH_FILE = re.compile(r"batch-(\d+)\.pt")  # batch-000003.pt: the record columns of global batch 3


def partial_dir(folder: Path) -> Path:
    return Path(folder) / PARTIAL_DIR


def batch_path(folder: Path, number: int) -> Path:
    return partial_dir(folder) / f"batch-{number:06d}.pt"


def saved_batches(folder: str | Path) -> list[int]:
    """The numbers of the batches saved in ``folder``'s ``.partial/``, sorted."""
    where = partial_dir(Path(folder))
    if not where.is_dir():
        return []
    return sorted(int(m.group(1)) for p in where.iterdir() if (m := BATCH_FILE.fullmatch(p.name)))


def has_partial(folder: str | Path) -> bool:
    """``folder`` holds saved batches of an evaluation (a ``.partial/`` that is not empty)."""
    where = partial_dir(Path(folder))
    return where.is_dir() and any(where.iterdir())


def partial_progress(folder: str | Path) -> str:
    """``3 of 10 batches done`` (without the total when the manifest cannot be read)."""
    done = len(saved_batches(folder))
    total = _manifest_fields(folder).get("n_batches")
    return f"{done} of {total} batches done" if isinstance(total, int) else f"{done} batches done"


def _manifest_fields(folder: str | Path) -> dict[str, Any]:
    """The manifest's JSON, or {} if it cannot be read: only what messages need is taken from it."""
    try:
        obj = json.loads((partial_dir(Path(folder)) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


@dataclass(frozen=True)
class Unfinished:
    """A results folder with saved batches and no summary.json: an evaluation that was stopped."""

    folder: Path
    progress: str  # "3 of 10 batches done"
    command: str  # what finishes it


def unfinished(folder: str | Path) -> Unfinished | None:
    """``folder``'s unfinished evaluation, if it holds one and no complete result."""
    folder = Path(folder)
    if (folder / SUMMARY_NAME).exists() or not has_partial(folder):
        return None
    command = _manifest_fields(folder).get("resume_command")
    if not isinstance(command, str) or not command:
        command = shlex.join(["wmrbench", "evaluate", "...", "--run", folder.name, "--resume"])
    return Unfinished(folder, partial_progress(folder), command)
