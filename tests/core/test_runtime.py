"""Torch's CPU threads are set at the start of every command (``wmrbench
--threads N``, $WMRBENCH_THREADS, $OMP_NUM_THREADS, else half the cores, 1 to 4) and recorded in
every result."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import assert_one_line_error, invoke
from wmrbench.cli.options import flag_text
from wmrbench.core.errors import rendering_settings
from wmrbench.core.runtime import default_threads, resolve_threads


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_default_leaves_half_the_cores_free_and_stays_small():
    assert [default_threads(c) for c in (1, 2, 3, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 4, 4]


def test_where_the_count_comes_from(monkeypatch):
    monkeypatch.delenv("WMRBENCH_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads(None) == (default_threads(), "default")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads(None) == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("WMRBENCH_THREADS", "2")
    assert resolve_threads(None) == (2, "WMRBENCH_THREADS")
    assert resolve_threads(5) == (5, "threads")  # a Python caller's setting, by its name
    with rendering_settings(flag_text):  # the CLI's: its option
        assert resolve_threads(5) == (5, "--threads")


def test_the_thread_count_is_applied_and_recorded_in_the_result(digits_runs, tmp_path, keep_threads):
    out = invoke("--threads", "2", "evaluate", "--checkpoint", digits_runs["trades-a0"], "--n-examples", "8",
                 "--steps", "1", "--alpha-test", "1", "--results-dir", tmp_path, "--run", "r", "--quiet")
    assert out.exit_code == 0, out.output
    assert torch.get_num_threads() == 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["versions"]["torch_threads"] == 2


def test_training_records_the_thread_count_in_its_checkpoint(tmp_path, keep_threads):
    out = invoke("--threads", "1", "train", "--dataset", "digits", "--epochs", "1", "--steps", "1", "--batch-size",
                 "512", "--checkpoint-dir", tmp_path, "--run", "t", "--device", "cpu", "--quiet")
    assert out.exit_code == 0, out.output
    assert torch.load(tmp_path / "t" / "last.pt", weights_only=True)["versions"]["torch_threads"] == 1


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_bad_thread_count_is_one_line(value, tmp_path):
    out = invoke("--threads", value, "leaderboard", tmp_path)
    assert_one_line_error(out, "--threads must be an integer >= 1", value)


def test_a_bad_environment_value_is_one_line(tmp_path):
    out = invoke("leaderboard", tmp_path, env={"WMRBENCH_THREADS": "many"})
    assert_one_line_error(out, "WMRBENCH_THREADS must be an integer >= 1", "'many'")
