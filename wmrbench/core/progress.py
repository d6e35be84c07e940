"""Rich progress bars (on stderr, so stdout stays clean for tables), or a stand-in without bars.

Bars show the count, the rate, the elapsed time and the ETA, and refresh by time (rich redraws
ten times a second), not when a step happens to report. Without bars (``--quiet``, or output
that is not a terminal, where rich draws no live bar) the stand-in still prints the lines the
library logs (one per epoch), so a redirected log says what happened; with output that is not a
terminal (and no ``--quiet``) an evaluation also prints one line per finished batch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second (examples while evaluating, steps while training)."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{task.speed:,.1f}/s")


class _NoBars:
    """The subset of rich.progress.Progress the library uses: no bars; logged lines still print.

    ``log``: the output is not a terminal (a log file), so the evaluation prints one plain line per
    finished batch instead of a bar (``--quiet`` prints none)."""

    def __init__(self, log: bool = False) -> None:
        self.console = Console(stderr=True)
        self.log = log

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, *args: Any, **kwargs: Any) -> None:
        pass


class AttackBar:
    """The evaluation's bar: examples done, the attack stage running on the current batch
    (clean, pgd, the weighted attack; AutoAttack's own attacks one by one), and the robust
    accuracy over the batches finished so far.

    Stages are announced by the host as it queues the work. On a GPU, where the attack loops
    never wait for the device, the host may name a stage a little before the device reaches it;
    the batch ends with one read-back (:meth:`batch_done`), so the two never drift further apart
    than one batch. Without a live bar nothing is read back at all.
    """

    def __init__(self, progress: Any, description: str, total: int) -> None:
        self.progress = progress
        self.live = not isinstance(progress, _NoBars)
        self.task = progress.add_task(description, total=total, info="")
        self.examples = 0
        self.robust = 0
        self.current = ""
        self.description, self.total, self.done = description, total, 0
        self.started = time.monotonic()

    def stage(self, name: str) -> None:
        if self.live:
            self.current = name
            self._show()

    def batch_done(self, n: int, correct: Any = None) -> None:
        """``n`` more examples finished; ``correct`` (a bool tensor of the uniform attack, A_rob's
        column) is counted with one read-back, only while a bar is shown."""
        if self.live:
            self.examples += n
            if correct is not None:
                self.robust += int(correct.sum())
            self.current = ""
            self._show()
        self.progress.advance(self.task, n)
        self.done += n
        if getattr(self.progress, "log", False):  # a log file: one line per batch, no read-back
            seconds = time.monotonic() - self.started
            self.progress.console.print(
                f"{self.description}: {self.done}/{self.total} examples ({100.0 * self.done / max(1, self.total):.0f}%), "
                f"{seconds:.1f}s", markup=False, soft_wrap=True, highlight=False)

    def _show(self) -> None:
        so_far = f"robust {100.0 * self.robust / self.examples:.2f}% so far" if self.examples else ""
        self.progress.update(self.task, info="  ".join(part for part in (self.current, so_far) if part))


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield _NoBars(log=enabled)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
    with progress:
        yield progress
