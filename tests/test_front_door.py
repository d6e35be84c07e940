"""What users read says what the tool does and what it measured, never how it was developed: no
issue numbers, dates, machine loads or development history in README.md, docs/, benchmarks'
README, the package's code, comments, docstrings and templates, and every command's ``--help``.
And README.md stays a front door: at most 250 lines, its two set-up commands intact (the demo
first, the tests second), its links to files that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tests.conftest import REPO
from wmrbench.cli.app import app

README = REPO / "README.md"
MAX_README_LINES = 250

# The two set-up commands, character for character: a newcomer pastes them, and CI (.ci/run)
# runs the same steps.
DEMO_COMMAND = "python3 -m pip install uv && uv sync --locked && uv run wmrbench demo"
TEST_COMMAND = ("python3 -m pip install uv && uv sync --locked && uv run lint-imports && "
                "uv run python -m pytest -q -m \"not slow\" && uv run python -m pytest -q -m slow")

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
HISTORY = re.compile(
    r"issue[ -]?[0-9]+|load average"  # the issue's own grep
    r"|\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?\b"  # 2026-11-24, 2026-11
    rf"|\b(?:{MONTHS}) \d{{1,2}}, (?:19|20)\d{{2}}\b"  # November 24, 2026
    r"|\byesterday\b|\bthis (?:session|branch)\b|\blanded on main\b|\bafter the (?:last )?merges?\b",
    re.IGNORECASE)


def _hits(text: str) -> list[str]:
    return [m.group(0) for m in HISTORY.finditer(text)]


def _read_files() -> dict[str, str]:
    """README.md, docs/, benchmarks/README.md and every text file of the package (code, templates,
    resources), by path relative to the repository."""
    paths = [README, REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    paths += sorted(p for p in (REPO / "wmrbench").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    texts = {}
    for path in paths:
        try:
            texts[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # a binary resource holds no prose
            continue
    return texts


def test_the_pattern_finds_what_it_names() -> None:
    """The scan below can fail: each kind of history it forbids is caught."""
    for text in ("(issue 23)", "issue-18's branch", "Issue 12: MNIST", "issue18", "load average 16-19",
                 "on 2026-12-03", "Commands (on the device, 2026-11-24)", "November 24, 2026", "this session had no GPU",
                 "landed on main", "after the issue-22 merges", "after the merges"):
        assert _hits(text), text
    for text in ("Zeng et al. (AAAI 2021)", "Hitaj et al. 2021", "arXiv 2103.01914", "A_sa(2) 43.52 [36.81, 52.02]",
                 "pytorch/pytorch#120601", "eps 8/255", "sha256 46531535"):
        assert not _hits(text), text


def test_no_issue_numbers_dates_loads_or_history_in_what_users_read() -> None:
    texts = _read_files()
    assert "README.md" in texts and "docs/results.md" in texts and "wmrbench/cli/app.py" in texts
    assert any(name.endswith(".j2") for name in texts)  # the report's template is scanned too
    found = {name: hits for name, text in texts.items() if (hits := _hits(text))}
    assert not found, f"history in what users read: {found}"


def _commands(command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command of the real app, subcommands of groups included (``reproduce table1``): Typer's
    own click objects, where a group is the command that has ``commands``."""
    found = [(path, command)]
    if hasattr(command, "commands"):
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, (*path, name))
    return found


def test_no_issue_numbers_dates_loads_or_history_in_any_help() -> None:
    """Every command's help as printed (at 100 columns), and its raw texts, which a line break
    in the printed form could split (``issue`` at a line's end, ``23`` on the next)."""
    commands = _commands(get_command(app))
    names = {" ".join(path) for path, _ in commands}
    assert {"", "train", "evaluate", "audit", "demo", "report"} <= names and len(commands) >= 13
    runner = CliRunner()
    found = {}
    for path, command in commands:
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})
        assert out.exit_code == 0, (path, out.output)
        raw = [command.help or "", command.epilog or "", command.short_help or ""]
        raw += [getattr(param, "help", None) or "" for param in command.params]
        if hits := _hits(out.output) + _hits("\n".join(raw)):
            found[" ".join(("wmrbench", *path))] = hits
    assert not found, f"history in --help: {found}"


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"
    # Both set-up commands, each whole on its own line, the demo first.
    assert DEMO_COMMAND in lines and TEST_COMMAND in lines
    assert lines.index(DEMO_COMMAND) < lines.index(TEST_COMMAND)


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))])
def test_every_relative_link_reaches_a_file(doc: str) -> None:
    path = REPO / doc
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    missing = [t for t in local if not (path.parent / t).exists()]
    assert not missing, f"{doc} links to files that do not exist: {missing}"
