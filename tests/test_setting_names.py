"""Library errors name settings by concept: ``str(exc)`` reads as a Python caller
wrote the setting, the CLI prints the same message with its options, and no converted module
spells a ``--flag`` itself (the count outside wmrbench/cli/ can only go down)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from wmrbench.cli.options import flag_text
from wmrbench.core.attack_config import AttackConfig
from wmrbench.core.config import EvalConfig, check_seeds
from wmrbench.core.errors import WmrbenchError, rendering_settings, setting
from wmrbench.models import model_sources

PACKAGE = Path(__file__).resolve().parent.parent / "wmrbench"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
# Other programs' flags, quoted as they are (torchrun's; the GAIRAT authors' script's).
EXTERNAL = {"--nproc-per-node", "--begin_epoch", "--net"}
# Modules whose strings spell a --flag BY DESIGN, at most that many: text written for the CLI's
# user that names a command's option as its user types it. A module not listed must hold none.
# (An argument of a command line, ``shlex.join(["wmrbench", "train", "--resume"])`` or
# ModelSource.command_options(), is a command, not a message: :func:`flag_strings` skips it.)
ALLOWED = {
    "report/reproduction.py": 1,  # reproduction.md's note on `wmrbench reproduce`'s restart rule
    "report/gallery.py": 1,  # the HTML report tells its reader which evaluate option keeps the images
}
# An argument of a command line: one option alone, as an element of a list or tuple.
ARGUMENT = re.compile(r"--[a-z][a-z0-9-]*")


def _strings(tree: ast.AST) -> list[str]:
    """The text of each string expression of ``tree`` but docstrings (and string statements)
    and command-line arguments. An f-string is one expression (its literal parts, ``{}`` for each
    value), as are adjacent literals, on any Python version."""
    skip: set[int] = set()
    texts = []
    for node in ast.walk(tree):  # breadth first: a parent is seen before its parts
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr)):
            skip.add(id(node.value))
        elif isinstance(node, (ast.List, ast.Tuple)):
            skip.update(id(e) for e in node.elts
                        if isinstance(e, ast.Constant) and isinstance(e.value, str) and ARGUMENT.fullmatch(e.value))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            if id(node) not in skip:
                texts.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts.append(node.value)
    return texts


def flag_strings(path: Path) -> int:
    """How many string expressions of ``path`` (not docstrings, comments or command-line
    arguments) spell a --flag."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum(1 for text in _strings(tree) if set(FLAG.findall(text)) - EXTERNAL)


def test_a_python_caller_reads_the_setting_by_its_python_name() -> None:
    with pytest.raises(WmrbenchError) as raised:
        AttackConfig(eps=0.3, step_size=-1.0, steps=10)
    assert str(raised.value) == "step_size must be a finite number >= 0; got -1.0"
    with pytest.raises(WmrbenchError) as raised:
        model_sources(checkpoint="a.pt", model_ids=["Carmon2019Unlabeled"])
    assert str(raised.value) == "model_id loads RobustBench's weights: drop checkpoint, arch and factory"
    with pytest.raises(WmrbenchError) as raised:
        check_seeds((1, 2), seed=0)
    assert str(raised.value) == "seed=0 and seeds=1,2: the first of seeds is the result's seed; give one of them"
    assert "--" not in str(raised.value)


def test_a_setting_in_a_message_is_rendered_by_whoever_prints_it() -> None:
    message = f"{setting('alpha_test', '41')} with {setting('method', 'apgd-ce')}; {setting('verify_checksums', False)}"
    exc = WmrbenchError(message)
    assert str(exc) == "alpha_test=41 with method=apgd-ce; verify_checksums=False"
    with rendering_settings(flag_text):
        assert str(exc) == "--alpha-test 41 with --attack apgd-ce; --no-verify-checksums"
        # A message quoted inside another while the CLI runs is named the CLI's way too.
        assert str(WmrbenchError(f"outer: {exc}")) == "outer: --alpha-test 41 with --attack apgd-ce; --no-verify-checksums"
    assert str(exc) == "alpha_test=41 with method=apgd-ce; verify_checksums=False"  # the block is over


def test_an_evaluation_config_error_names_method_for_python() -> None:
    attack = AttackConfig(eps=0.3, step_size=0.01, steps=1)
    with pytest.raises(WmrbenchError) as raised:
        EvalConfig(dataset="mnist", attack=attack, alpha_test=(50.0,), n_examples=None, batch_size=8, seed=0,
                   data_dir="data", device="cpu", precision="fp32", results_dir="results", run="r", method="apgd-ce")
    assert str(raised.value).startswith("alpha_test=50 with method=apgd-ce: weighted APGD compares")


def test_flag_text_outside_the_cli_only_goes_down() -> None:
    counts = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
            continue
        n = flag_strings(path)
        if n:
            counts[rel] = n
    over = {rel: (n, ALLOWED.get(rel, 0)) for rel, n in counts.items() if n > ALLOWED.get(rel, 0)}
    assert not over, f"message strings spelling a --flag (found, allowed); name the setting with errors.setting: {over}"


def test_the_grep_sees_a_flag_in_a_message(tmp_path: Path) -> None:
    """The counter is not blind: a message with a flag counts, a docstring or comment does not."""
    module = tmp_path / "m.py"
    module.write_text('"""Docs may say --eps."""\n# so may comments: --eps\nraise ValueError(f"--eps {1} is bad")\n'
                      'x = f"a {1} " "--steps is bad"\n'
                      'y = ["--eps is bad", f"--{x}"]\n'
                      'command = shlex.join(["wmrbench", "train", "--run", run, "--resume"])\n')
    assert flag_strings(module) == 3  # the f-string, the joined literals, the list's message; not the command
