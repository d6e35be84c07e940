"""The one exception type for bad user input, the one way to quote another error in it, and the
one way a message names a setting.

Library code raises WmrbenchError with a message that fits on one line and says what to do;
the CLI prints it as ``Error: <message>`` and exits with code 2, having written nothing.

A message names a setting with :func:`setting`, never as a command-line flag: the library does
not know how the CLI spells its options. ``str(exc)`` names it as a Python caller wrote it
(``step_size``, ``alpha_test=2``); the CLI renders the same message with its options
(``--step-size``, ``--alpha-test 2``) through :func:`rendering_settings`.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from typing import Any

# A setting inside a message: OPEN name [SEP value] CLOSE, in Unicode private-use code points,
# which no name, value, path or user text of ours contains: the marker is unambiguous.
OPEN, SEP, CLOSE = "\ue000", "\ue001", "\ue002"
_MARKED = re.compile(f"{OPEN}([^{OPEN}{SEP}{CLOSE}]*)(?:{SEP}([^{OPEN}{CLOSE}]*))?{CLOSE}")
_NO_VALUE = object()

# How a setting is named: (name, value or None) -> text.
Namer = Callable[[str, "str | None"], str]


def python_name(name: str, value: str | None) -> str:
    """A setting as a Python caller gives it: ``step_size``, ``alpha_test=2``."""
    return name if value is None else f"{name}={value}"


_namer: contextvars.ContextVar[Namer] = contextvars.ContextVar("wmrbench_setting_namer", default=python_name)


def setting(name: str, value: Any = _NO_VALUE) -> str:
    """Mark the setting ``name`` (a config field's name, e.g. ``"step_size"``), optionally with
    the value it was given, inside a message. Format the value as it should read (``f"{a:g}"``)."""
    if value is _NO_VALUE:
        return f"{OPEN}{name}{CLOSE}"
    return f"{OPEN}{name}{SEP}{value}{CLOSE}"


def render_settings(text: str, namer: Namer | None = None) -> str:
    """``text`` with each marked setting named by ``namer`` (default: the one in force, Python's
    names unless the CLI set its own with :func:`rendering_settings`)."""
    if OPEN not in text:
        return text
    name = namer or _namer.get()
    return _MARKED.sub(lambda m: name(m.group(1), m.group(2)), text)


@contextlib.contextmanager
def rendering_settings(namer: Namer) -> Iterator[None]:
    """Within this block, messages name settings with ``namer``: the CLI wraps each command in
    it, so that a message quoted inside another (``f"{exc}; ..."``) is named as the outer one."""
    token = _namer.set(namer)
    try:
        yield
    finally:
        _namer.reset(token)


class WmrbenchError(Exception):
    """Bad input: unknown name, value out of range, missing or corrupt file."""

    def __str__(self) -> str:
        return render_settings(super().__str__())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during long work, with one line saying what was kept and the command that
    continues it; the CLI prints it and exits with 130, as an interrupted program does."""

    def __str__(self) -> str:
        return render_settings(super().__str__())


# What a Ctrl-C during a whole reproduction says: its runs' own lines would name one command per
# run (seven for the family), while the reproduction's own command continues every one of them.
RERUN_TO_CONTINUE = ("every finished epoch and every evaluated batch is kept; rerun the same command to continue "
                     "where it stopped")


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
