"""What every command shares: one-line errors with exit code 2, and option parsing helpers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer

from wmrbench.config import Precision, parse_enum
from wmrbench.errors import WmrbenchError
from wmrbench.runtime import default_precision, resolve_device

EXIT_USAGE = 2


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn WmrbenchError into ``Error: <message>`` on stderr and exit code 2 (no traceback).

    Under torchrun every failing process reports; ranks other than 0 name themselves.
    """
    try:
        yield
    except WmrbenchError as exc:
        rank = os.environ.get("RANK", "0")
        where = "" if rank == "0" else f"[rank {rank}] "
        typer.echo(f"Error: {where}{exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def precision_for(precision: str | None, device: str) -> Precision:
    """An explicit --precision, else bf16 on CUDA and fp32 elsewhere."""
    if precision is not None:
        return parse_enum(Precision, precision, "precision")
    return default_precision(resolve_device(device))


def parse_ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise WmrbenchError(f"{option} takes comma-separated integers, e.g. 55,75,90; got {text!r}") from None
