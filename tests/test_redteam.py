"""Issue 23, items 5 and 6: a red team's findings, each ending in one clear line or a right result.

Every test drives the real Typer app (CliRunner) and asserts the exit code, the one line, and what
is on disk. The autouse fixture in conftest.py runs each test in an empty folder of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, files_under, invoke


@pytest.mark.parametrize("command", ["train", "evaluate", "attack"])
@pytest.mark.parametrize(("run", "why"), [
    ("x" * 300, "300 bytes long, more than 200"),
    ("a\nb", "control character '\\n'"),
    ("a\tb", "control character '\\t'"),
])
def test_a_bad_run_name_is_one_line_before_anything_is_written(command, run, why, tmp_path):
    args = {"train": ["train", "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"],
            "evaluate": ["evaluate", "--checkpoint", tmp_path / "none.pt", "--results-dir", tmp_path / "res"],
            "attack": ["attack", "--checkpoint", tmp_path / "none.pt", "--results-dir", tmp_path / "res"]}[command]
    if command != "train":  # a real model file, so that only the name can be at fault
        import torch

        from wmrbench.models import create_model

        torch.save(create_model("digitsnet", 10, 1).state_dict(), tmp_path / "none.pt")
        args += ["--arch", "digitsnet", "--dataset", "digits"]
    line = assert_one_line_error(invoke(*args, "--run", run), "is not a run name", why)
    assert "\n" not in line and len(line) < 400  # a 300-character name is not echoed in full
    assert files_under(tmp_path) <= {"none.pt"}


def test_rerun_refuses_a_bad_run_name(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text("{}")
    assert_one_line_error(invoke("rerun", summary, "--run", "a\rb"), "control character")
