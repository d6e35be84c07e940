"""What every command shares: one-line errors with exit code 2, settings named as options."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import typer

from wmrbench.cli.options import flag_text
from wmrbench.core.errors import Interrupted, WmrbenchError, rendering_settings

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program stopped by Ctrl-C


def as_options(exc: BaseException) -> str:
    """An error's message with its settings named as options (``--step-size``), for a check made
    outside :func:`user_errors` (an option's callback, the config file)."""
    with rendering_settings(flag_text):
        return str(exc)


def fail(message: str) -> NoReturn:
    """``Error: <message>`` on stderr, exit code 2: for a check made outside :func:`user_errors`."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn WmrbenchError into ``Error: <message>`` on stderr and exit code 2 (no traceback),
    and an :class:`Interrupted` (Ctrl-C) into ``Interrupted: <what was kept, how to continue>``, exit 130.

    Within it, messages name settings as this CLI's options (``--step-size``, not the library's
    ``step_size``): also those the library quotes inside its own messages.
    Under torchrun every failing process reports; ranks other than 0 name themselves.
    """
    with rendering_settings(flag_text):
        try:
            yield
        except Interrupted as exc:
            if os.environ.get("RANK", "0") == "0":
                typer.echo(f"Interrupted: {exc}", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except WmrbenchError as exc:
            rank = os.environ.get("RANK", "0")
            where = "" if rank == "0" else f"[rank {rank}] "
            typer.echo(f"Error: {where}{exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
