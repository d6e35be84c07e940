"""Which modules of wmrbench/ a tier of the tests exercises: a pytest plugin, with no dependency,
that records every wmrbench source file whose code is entered while a selected test runs (its
setup, call and teardown), and lists at the end the modules never entered.

    OMP_NUM_THREADS=1 uv run python -m pytest -m "not slow" -q -p tests.check_modules

It is how tests/README.md's claim "the fast tier covers every module" is checked. A module whose
only code runs at import (re-exports, constants) is listed as "imported only"; code that runs only
in a subprocess (``python -m wmrbench``, torchrun) is not seen. The profiler slows the run down:
time the tier without this plugin.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wmrbench"
_entered: set[str] = set()


def _profile(frame, event, arg) -> None:
    # A module's own body runs on import (a lazy import inside a test would count): functions only.
    if event == "call" and frame.f_code.co_name != "<module>":
        _entered.add(frame.f_code.co_filename)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    sys.setprofile(_profile)
    threading.setprofile(_profile)
    try:
        return (yield)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def _has_functions(path: Path) -> bool:
    return any(line.lstrip().startswith(("def ", "async def ")) for line in path.read_text().splitlines())


def pytest_terminal_summary(terminalreporter) -> None:
    entered = {str(Path(f).resolve()) for f in _entered if f.endswith(".py")}
    modules = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    missed = [p for p in modules if str(p.resolve()) not in entered]
    never = [p for p in missed if _has_functions(p)]
    imported_only = [p for p in missed if not _has_functions(p)]
    write = terminalreporter.write_line
    write(f"check_modules: {len(modules) - len(missed)} of {len(modules)} modules of wmrbench/ entered by the selected tests")
    for path in imported_only:
        write(f"  imported only (no functions): {path.relative_to(PACKAGE.parent)}")
    for path in never:
        write(f"  NEVER ENTERED: {path.relative_to(PACKAGE.parent)}")
