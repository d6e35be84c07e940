"""Every number and name a user can pass is checked before any work, with
its range in one line; nothing is written."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import assert_one_line_error, files_under, invoke

TRAIN = ("train", "--dataset", "digits", "--epochs", "1", "--steps", "1", "--device", "cpu", "--quiet")

# option values -> the words the one line must hold (the option and its range)
TRAIN_CASES = {
    "lr nan": (("--lr", "nan"), "--lr must be a finite number >= 0; got nan"),
    "lr inf": (("--lr", "inf"), "--lr must be a finite number >= 0; got inf"),
    "lr negative": (("--lr", "-0.1"), "--lr must be a finite number >= 0"),
    "weight decay negative": (("--weight-decay", "-1"), "--weight-decay must be a finite number >= 0"),
    "momentum 5": (("--momentum", "5"), "--momentum must be in [0, 1); got 5.0"),
    "momentum 1": (("--momentum", "1"), "--momentum must be in [0, 1)"),
    "momentum negative": (("--momentum", "-0.5"), "--momentum must be in [0, 1)"),
    "beta nan": (("--beta", "nan"), "--beta must be a finite number >= 0"),
    "beta negative": (("--beta", "-6"), "--beta must be a finite number >= 0"),
    "alpha_train inf": (("--alpha-train", "inf"), "--alpha-train must be a finite number >= 0 (0 is the uniform, unweighted case); got inf"),
    "alpha_train nan": (("--alpha-train", "nan"), "--alpha-train must be a finite number >= 0"),
    "gamma 0": (("--gamma", "0"), "--gamma must be a finite number > 0"),
    "gamma nan": (("--gamma", "nan"), "--gamma must be a finite number > 0"),
    "eps nan": (("--eps", "nan"), "--eps must be in [0, 1]"),
    "eps inf": (("--eps", "inf"), "--eps must be in [0, 1]"),
    "step size inf": (("--step-size", "inf"), "--step-size must be a finite number >= 0"),
    "steps negative": (("--steps", "-1"), "--steps must be an integer >= 0"),
    "restarts 0": (("--restarts", "0"), "--restarts must be an integer >= 1"),
    "epochs 0": (("--epochs", "0"), "--epochs must be an integer >= 1"),
    "batch size 0": (("--batch-size", "0"), "--batch-size must be an integer >= 1"),
    "log every 0": (("--log-every", "0"), "--log-every must be an integer >= 1"),
    "milestone 0": (("--milestones", "0,5"), "--milestones must be an integer >= 1"),
    "seed negative": (("--seed", "-1"), "--seed must be an integer in 0..9223372036854775807; got -1"),
    "seed 2^63": (("--seed", str(2**63)), "--seed must be an integer in 0..9223372036854775807"),
    "device meta": (("--device", "meta"), "device 'meta' cannot run wmrbench here"),
    "device xla": (("--device", "xla"), "device 'xla' cannot run wmrbench here"),
    "arch does not fit the data": (("--arch", "resnet18"), "--arch resnet18 cannot take digits inputs of shape (1, 8, 8)"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses_a_bad_value_with_its_range_before_any_work(case, tmp_path, monkeypatch):
    args, words = TRAIN_CASES[case]
    monkeypatch.chdir(tmp_path)
    out = invoke(*TRAIN, *args)
    assert_one_line_error(out, words)
    assert out.stdout == ""  # refused before the config is even printed
    assert files_under(tmp_path) == set()


def test_train_refuses_mps_where_torch_cannot_use_it(tmp_path, monkeypatch):
    if torch.backends.mps.is_available():
        pytest.skip("mps is usable on this machine")
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke(*TRAIN, "--device", "mps"), "device 'mps' cannot run wmrbench here")
    assert_one_line_error(invoke(*TRAIN, "--device", "cuda:7"), "device 'cuda:7'")
    assert files_under(tmp_path) == set()


EVAL_CASES = {
    "alpha_test inf": (("--alpha-test", "1,inf"), "--alpha-test must be a finite number >= 0 (0 is the uniform"),
    "alpha_test nan": (("--alpha-test", "nan"), "--alpha-test must be a finite number >= 0 (0 is the uniform"),
    "eps nan": (("--eps", "nan"), "--eps must be in [0, 1]"),
    "l2 eps inf": (("--norm", "l2", "--eps", "inf", "--step-size", "0.1"), "--eps must be a finite number >= 0"),
    "step size nan": (("--step-size", "nan"), "--step-size must be a finite number >= 0"),
    "seed too big": (("--seed", str(2**63)), "--seed must be an integer in 0..9223372036854775807"),
    "n_examples 0": (("--n-examples", "0"), "--n-examples must be an integer >= 1"),
    "batch size 0": (("--batch-size", "0"), "--batch-size must be an integer >= 1"),
    "device meta": (("--device", "meta"), "device 'meta' cannot run wmrbench here"),
}


@pytest.mark.parametrize("command", ["evaluate", "attack"])
@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_evaluate_and_attack_refuse_a_bad_value_with_its_range(case, command, tmp_path, monkeypatch, digits_runs):
    args, words = EVAL_CASES[case]
    monkeypatch.chdir(tmp_path)
    out = invoke(command, "--checkpoint", digits_runs["trades-a0"], "--steps", "1", "--quiet", *args)
    assert_one_line_error(out, words)
    assert files_under(tmp_path) == set()


def test_a_checkpoint_config_that_wmrbench_never_writes_is_one_line(tmp_path, digits_runs):
    # The case: alpha_train "two" in a checkpoint's config made a summary that broke
    # `leaderboard` for every result. Now the evaluation refuses it, and --resume too.
    checkpoint = torch.load(digits_runs["trades-a0"], weights_only=True)
    checkpoint["config"]["alpha_train"] = "two"
    edited = tmp_path / "ck" / "edited" / "last.pt"
    edited.parent.mkdir(parents=True)
    torch.save(checkpoint, edited)
    out = invoke("evaluate", "--checkpoint", edited, "--steps", "1", "--n-examples", "10", "--results-dir",
                 tmp_path / "results", "--device", "cpu", "--quiet")
    assert_one_line_error(out, "records a training config with alpha_train 'two'")
    out = invoke("train", "--run", "edited", "--resume", "--checkpoint-dir", tmp_path / "ck", "--device", "cpu")
    assert_one_line_error(out, "--alpha-train must be a number; got 'two'")
    assert not (tmp_path / "results").exists()
