"""``--help`` as a newcomer reads it: the real Typer app rendered at 100 columns.

Each command's options sit in named panels (the first-run options in the first one), no
option's help takes more than two lines, and ``wmrbench --help`` lists the commands in the
order of a first day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from typing import Any

import pytest
import typer

from tests.conftest import invoke
from wmrbench.cli import params as p
from wmrbench.cli.app import FIRST_DAY, app

WIDTH = "100"
FIRST_PANEL = "Options"  # typer's panel of the options that name no panel of their own
NAME_COLUMN = 6  # a row's name starts within the first columns of its panel; wrapped help far right


def _commands() -> list[tuple[str, ...]]:
    """Every command's path, sub-commands of a group included (``reproduce table1``)."""
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []
    for name, command in root.commands.items():
        if hasattr(command, "commands"):  # a group (typer has its own click)
            paths += [(name, sub) for sub in command.commands]
        else:
            paths.append((name,))
    return paths


def _click_command(path: tuple[str, ...]) -> Any:
    """The click command (typer's own click) at ``path``."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@dataclass(frozen=True)
class Row:
    name: str  # the row's first line: its name, type and the start of its help
    lines: list[str]  # every line it takes, the first included


def _panels(output: str) -> dict[str, list[Row]]:
    """The rendered help's panels, each with its rows: a row's first line names it in the
    leftmost columns; the lines below it that are blank there are its help, wrapped."""
    panels: dict[str, list[Row]] = {}
    current: list[Row] | None = None
    for line in output.splitlines():
        if line.startswith("╭─"):
            current = panels.setdefault(line.strip("╭─╮ ").split(" ─")[0].strip(), [])
        elif line.startswith("╰"):
            current = None
        elif current is not None and line.startswith("│"):
            content = line[2:-2]
            indent = len(content) - len(content.lstrip())
            if content.strip() and indent < NAME_COLUMN:
                current.append(Row(content.strip().lstrip("* "), [content]))
            elif current and content.strip():
                current[-1].lines.append(content)
    return panels


def _help(path: tuple[str, ...] = ()) -> str:
    out = invoke(*path, "--help", env={"COLUMNS": WIDTH})
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize("path", [(), *_commands()], ids=lambda path: " ".join(path) or "wmrbench")
def test_every_options_help_takes_at_most_two_lines_at_100_columns(path):
    panels = _panels(_help(path))
    rows = [row for name, rows in panels.items() if name != "Commands" for row in rows]
    shown = [q for q in _click_command(path).params if not getattr(q, "hidden", False)]
    assert len(rows) == len(shown) + 1, (rows, shown)  # + --help: the parser found every option's row
    long = {row.name.split()[0]: len(row.lines) for row in rows if len(row.lines) > 2}
    assert not long, f"wmrbench {' '.join(path)} --help: options over two lines at {WIDTH} columns: {long}"


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_every_command_puts_options_beyond_a_first_run_in_named_panels(path):
    panels = _panels(_help(path))
    named = [name for name in panels if name not in (FIRST_PANEL, "Arguments")]
    assert named, f"wmrbench {' '.join(path)} --help has no named panel: {list(panels)}"
    assert set(named) <= set(p.PANELS), f"panel names not from params.PANELS: {set(named) - set(p.PANELS)}"
    if FIRST_PANEL in panels:  # the first-run options come before every named panel
        order = list(panels)
        assert all(order.index(FIRST_PANEL) < order.index(name) for name in named), order


def test_train_help_shows_at_least_three_named_panels():
    panels = _panels(_help(("train",)))
    named = [name for name in panels if name != FIRST_PANEL]
    assert len(named) >= 3, list(panels)
    first = {row.name.split()[0] for row in panels[FIRST_PANEL]}
    # a first run names its data, its defense, its alpha and its seeds; the protocol sits elsewhere
    assert {"--dataset", "--defense", "--alpha-train", "--epochs", "--seeds"} <= first, first
    assert not {"--restarts", "--restart-from", "--precision", "--stack"} & first, first


def test_root_help_lists_the_commands_in_first_day_order_one_line_each():
    rows = _panels(_help())["Commands"]
    # see it work, measure a checkpoint, compare, audit, show; then train and the paper's tables; tools
    assert [row.name.split()[0] for row in rows] == ["demo", "evaluate", "compare", "audit", "leaderboard", "report",
                                                     "plot", "train", "reproduce", "attack", "rerun", "models"]
    assert set(FIRST_DAY) == {row.name.split()[0] for row in rows}  # no command left to registration order
    assert all(len(row.lines) == 1 for row in rows), [row.lines for row in rows if len(row.lines) > 1]
    subs = _panels(_help(("reproduce",)))["Commands"]
    assert all(len(row.lines) == 1 for row in subs), [row.lines for row in subs]


# What a measurement looks like in a help string: "overstated A_rob by 0.40 points", "~30 s",
# "about 2x faster", "load average". Measured numbers belong in docs with their commands.
MEASUREMENT = re.compile(r"measured|overstated|load average|shared \d-core|\d points|~\d+ ?s\b|\d(\.\d+)?x (faster|slower)",
                         re.IGNORECASE)


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_no_help_string_holds_a_measurement(path):
    command = _click_command(path)
    texts = {q.name: getattr(q, "help", None) or "" for q in command.params} | {"(command)": command.help or ""}
    found = {name: MEASUREMENT.search(text).group(0) for name, text in texts.items() if MEASUREMENT.search(text)}
    assert not found, f"wmrbench {' '.join(path)}: measurements in help: {found}"
