"""A first day without surprises, second pass: --threads in either place, messages that say what
to do (each through the real command or the real Python API, asserting one line and nothing
written), and the demo's and fit's quiet modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

import wmrbench
from tests.conftest import assert_one_line_error, invoke
from wmrbench.core.errors import WmrbenchError


def test_threads_works_after_the_command_name_too(tmp_path: Path) -> None:
    for args in (("--threads", "1", "leaderboard", tmp_path), ("leaderboard", tmp_path, "--threads", "1"),
                 ("leaderboard", tmp_path, "--threads=1")):
        out = invoke(*args)
        # the command ran (an empty folder is its own one-line error), not "No such option"
        line = assert_one_line_error(out, "no summary.json")
        assert "No such option" not in line


def test_threads_after_the_command_is_still_checked(tmp_path: Path) -> None:
    assert_one_line_error(invoke("leaderboard", tmp_path, "--threads", "0"), "--threads must be an integer >= 1")


def test_more_threads_than_cores_are_capped_with_a_note(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    before = torch.get_num_threads()
    try:
        out = invoke("leaderboard", tmp_path, "--threads", str(cores + 997))
        assert f"--threads {cores + 997} is more than this machine's {cores} cores; using {cores} threads" in out.stderr
        assert torch.get_num_threads() == cores
    finally:
        torch.set_num_threads(before)


def test_demo_refuses_alpha_train_zero_before_any_work(tmp_path: Path) -> None:
    out = invoke("demo", "--alpha-train", "0", "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res")
    assert_one_line_error(out, "--alpha-train 0: '+ours' needs a value above 0")
    assert not list(tmp_path.iterdir())


def test_rerun_of_a_missing_path_says_so_and_names_itself(tmp_path: Path) -> None:
    assert_one_line_error(invoke("rerun", tmp_path / "nope" / "summary.json"), "no such file")
    line = assert_one_line_error(invoke("rerun", tmp_path / "nope.pt"), "rerun: no checkpoint at")
    assert "--resume" not in line


def test_audit_reference_errors_name_the_option(tmp_path: Path, digits_runs, mnist_model) -> None:
    results = tmp_path / "results"
    out = invoke("audit", "--checkpoint", digits_runs["trades-a0"], "--reference", tmp_path / "missing.pt", "--quick",
                 "--n-examples", "8", "--results-dir", results, "--device", "cpu")
    assert_one_line_error(out, f"--reference {tmp_path / 'missing.pt'}:", "not found")
    from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR
    out = invoke("audit", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir",
                 MNIST_DIR, "--reference", digits_runs["trades-a0"], "--quick", "--n-examples", "8", "--results-dir",
                 results, "--device", "cpu")
    line = assert_one_line_error(out, "--reference", "was trained on digits, and the audit is on mnist")
    assert "contradicts" not in line
    assert not results.exists() or not any(results.rglob("*.json"))


def _linear(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, outputs))


def test_images_just_past_one_print_their_real_range_and_the_fix() -> None:
    x = torch.rand(4, 1, 8, 8) * 0.5
    x[0, 0, 0, 0] = 1 + 1e-6
    with pytest.raises(WmrbenchError) as caught:
        wmrbench.evaluate(_linear(10), x, torch.zeros(4, dtype=torch.long), eps=0.1, steps=1)
    message = str(caught.value)
    assert "1.000000954" in message and "outside [0, 1]" in message and "x.clamp(0, 1)" in message


def test_a_one_output_model_is_named_as_such() -> None:
    with pytest.raises(WmrbenchError, match="returns 1 output per image; it must return one logit per class"):
        wmrbench.evaluate(_linear(1), torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), eps=0.1, steps=1)


def test_images_of_another_data_sets_shape_are_not_filed_under_its_name(tmp_path: Path) -> None:
    with pytest.raises(WmrbenchError, match=r"dataset='mnist' images are 1 x 28 x 28; these are 1 x 8 x 8"):
        wmrbench.evaluate(_linear(10), torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), dataset="mnist",
                          results_dir=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_rerun_of_a_folder_says_what_to_give(tmp_path: Path) -> None:
    assert_one_line_error(invoke("rerun", tmp_path), "is a folder; give a result's summary.json or a training checkpoint")
