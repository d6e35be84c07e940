"""The one exception type for bad user input, and the one way to quote another error in it.

Library code raises WmrbenchError with a message that fits on one line and says what to do;
the CLI prints it as ``Error: <message>`` and exits with code 2, having written nothing.
"""

from __future__ import annotations


class WmrbenchError(Exception):
    """Bad input: unknown name, value out of range, missing or corrupt file."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during long work, with one line saying what was kept and the command that
    continues it; the CLI prints it and exits with 130, as an interrupted program does."""


def first_line(exc: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """The first non-empty line of an exception's message (its type name when it has none).

    ``with_type`` prefixes ``TypeName: ``, for errors from code that is not ours (user code,
    third-party loaders); ``limit`` cuts very long lines (a huge state_dict key list).
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if limit is None else lines[0][:limit]
    return f"{type(exc).__name__}: {text}" if with_type else text
