"""Rich progress bars (on stderr, so stdout stays clean for tables), or a stand-in without bars.

Bars show the count, the rate, the elapsed time and the ETA, and refresh by time (rich redraws
ten times a second), not when a step happens to report. Without bars (``--quiet``, or output
that is not a terminal, where rich draws no live bar) the stand-in still prints the lines the
library logs (one per epoch), so a redirected log says what happened.
"""

from __future__ import annotations

import contextlib
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
    """The subset of rich.progress.Progress the library uses: no bars; logged lines still print."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def advance(self, *args: Any, **kwargs: Any) -> None:
        pass

    def remove_task(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield _NoBars()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
    with progress:
        yield progress
