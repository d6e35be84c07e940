"""A run that explodes but stays finite is stopped (wmrbench.training.divergence's rule),
keeps its last good checkpoint, and --no-divergence-stop trains on with a warning."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import assert_one_line_error, invoke
from wmrbench.training.divergence import DivergenceRule, diverged, likely_cause, loss_scale

TRADES_DIGITS = DivergenceRule(10, loss_scale(2.0, 6.0))


def epochs(*pairs: tuple[float, float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "loss": loss, "adv_accuracy": acc} for i, (loss, acc) in enumerate(pairs)]


def test_the_issue_s_history_is_diverged_at_its_first_epoch():
    # The losses and accuracies `train --dataset digits --defense trades --alpha-train 2 --lr 10000` printed.
    history = epochs((2.088e32, 0.0988), (18805.0411, 0.11), (16277.7926, 0.0905))
    found = diverged(history[:1], TRADES_DIGITS)
    assert found is not None and found.epoch == 1 and "2.088e+32" in found.what
    assert diverged(history[:2], TRADES_DIGITS).epoch == 2


def test_the_ceiling_is_ten_times_the_largest_starting_loss():
    assert TRADES_DIGITS.loss_ceiling == pytest.approx(10 * math.log(10) * math.exp(2) * 7)
    pgd = DivergenceRule(10, loss_scale(0.0, None))
    assert pgd.loss_ceiling == pytest.approx(10 * math.log(10))
    assert diverged(epochs((23.0, 0.5)), pgd) is None  # just under 23.03
    assert diverged(epochs((23.1, 0.5)), pgd) is not None
    assert diverged(epochs((float("nan"), 0.1)), pgd) is None  # NaN is the finiteness guard's


def test_a_healthy_history_is_not_diverged():
    # Real losses of the session's digits runs and of MNIST TRADES stay far under the ceiling.
    history = epochs((2.3, 0.05), (1.2, 0.3), (0.9, 0.45), (0.7, 0.55))
    assert all(diverged(history[: i + 1], TRADES_DIGITS) is None for i in range(len(history)))


def test_accuracy_back_at_chance_after_clearly_above_is_diverged():
    rule = DivergenceRule(10)
    assert diverged(epochs((1.0, 0.45), (2.0, 0.10)), rule).epoch == 2
    assert "fell to 10.00%" in diverged(epochs((1.0, 0.45), (2.0, 0.10)), rule).what
    assert diverged(epochs((1.0, 0.19), (2.0, 0.10)), rule) is None  # 19% was not clearly above chance
    assert diverged(epochs((1.0, 0.45), (2.0, 0.16)), rule) is None  # 16% is not chance
    assert diverged(epochs((2.3, 0.0), (2.0, 0.02)), rule) is None  # a weak model under attack from the start
    # 200 classes: chance 0.5%, clearly above from 10.5%
    tiny = DivergenceRule(200)
    assert diverged(epochs((5.0, 0.11), (6.0, 0.006)), tiny) is not None
    assert diverged(epochs((5.0, 0.10), (6.0, 0.006)), tiny) is None


def test_the_rule_is_pure_and_deterministic():
    """The answer depends on the history given and nothing else: not on the histories judged
    before (no peak or ceiling carried between calls, which would flag a healthy run after a
    diverged one, or miss one), and the history is left as it was."""
    rule = DivergenceRule(10)
    collapsed = epochs((1.0, 0.45), (2.0, 0.10))
    flat = epochs((2.3, 0.10), (2.2, 0.10))  # never above chance: nothing fell
    copy = [dict(h) for h in collapsed]
    expected = diverged(collapsed, rule)
    assert expected is not None and expected.epoch == 2
    assert diverged(flat, rule) is None  # right after a collapse: its 45% peak is not this run's
    assert diverged(collapsed, rule) == expected  # after a healthy run: still the same answer
    assert diverged(flat, rule) is None
    assert diverged(collapsed, DivergenceRule(10)) == expected  # a fresh rule of the same run: the same
    assert collapsed == copy


def test_the_likely_cause_names_the_rate_and_alpha():
    assert likely_cause(1e4, 2.0) == "learning rate 10000 too high (or alpha_train 2 too large)?"
    assert likely_cause(0.5, 0.0) == "learning rate 0.5 too high?"


# The issue's run, with a 2-step attack and lr 1000 to keep it short (at lr 10000 a 2-step attack
# goes NaN, which the finiteness guard stops): epoch 1's mean loss is 2.8e15, epoch 2's 1893.
ISSUE = ("train", "--dataset", "digits", "--defense", "trades", "--alpha-train", "2", "--lr", "1000",
         "--steps", "2", "--device", "cpu", "--quiet")


@pytest.mark.slow
def test_the_issue_s_exact_command_stops(tmp_path):
    out = invoke("train", "--dataset", "digits", "--defense", "trades", "--alpha-train", "2", "--lr", "10000",
                 "--epochs", "3", "--device", "cpu", "--quiet", "--checkpoint-dir", tmp_path)
    assert_one_line_error(out, "training diverged: the mean loss", "of epoch 1 is over 10x", "no checkpoint was written",
                          "learning rate 10000 too high")
    assert not any(tmp_path.rglob("last.pt"))


def test_the_issue_s_run_stops_in_epoch_1_and_writes_nothing(tmp_path):
    out = invoke(*ISSUE, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck", "--run", "x")
    line = assert_one_line_error(out, "training diverged: the mean loss", "of epoch 1 is over 10x",
                                 "no checkpoint was written", "learning rate 1000 too high", "--no-divergence-stop")
    assert "epoch 1/3" not in out.stdout + out.stderr  # the exploded epoch is not reported as trained
    assert not (tmp_path / "ck" / "x").exists(), line


def test_no_divergence_stop_trains_on_with_a_warning(tmp_path):
    out = invoke(*ISSUE, "--epochs", "2", "--checkpoint-dir", tmp_path, "--run", "x", "--no-divergence-stop")
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.output.splitlines() if line.startswith("Warning: run x:")]
    assert len(warnings) == 2 and "learning rate 1000 too high" in warnings[0]
    saved = torch.load(tmp_path / "x" / "last.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["config"]["divergence_stop"] is False


def test_a_later_divergence_keeps_the_last_good_checkpoint(tmp_path):
    # lr 0.05 in epoch 1, then x1e5 at milestone 1: epoch 2 runs at lr 5000 and explodes, finitely.
    out = invoke("train", "--dataset", "digits", "--defense", "pgd", "--steps", "1", "--device", "cpu", "--quiet",
                 "--epochs", "3", "--lr", "0.05", "--milestones", "1", "--gamma", "1e5",
                 "--checkpoint-dir", tmp_path, "--run", "late")
    line = assert_one_line_error(out, "training diverged", "epoch 2", "(epoch 1) is kept", "learning rate 0.05")
    saved = torch.load(tmp_path / "late" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and len(saved["history"]) == 1, line
    assert len((tmp_path / "late" / "metrics.jsonl").read_text().splitlines()) == 1


def test_each_run_of_a_sweep_is_judged_by_the_same_rule(tmp_path):
    out = invoke("train", "--dataset", "digits", "--defense", "trades", "--alpha-train", "0,2", "--lr", "1000",
                 "--steps", "2", "--device", "cpu", "--quiet", "--epochs", "2", "--run", "s", "--checkpoint-dir", tmp_path)
    assert out.exit_code == 2, out.output
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2 and "Traceback" not in out.output
    assert all("diverged: the mean loss" in e and "of epoch 1 is over 10x" in e for e in errors), errors
    assert not any(p.name == "last.pt" for p in tmp_path.rglob("*"))
