"""A run that diverges stops with one line and keeps
its last good checkpoint; TRADES no longer goes NaN when a softmax saturates; a model with
non-finite weights or outputs is not evaluated; a huge alpha_test gives finite weights.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import assert_one_line_error, files_under, invoke
from wmrbench.defenses.objectives import trades_objective

TRAIN = ("train", "--dataset", "digits", "--steps", "1", "--batch-size", "256", "--device", "cpu", "--quiet")
# The preset's batch of 64; the loss is read back (and checked) after every step, so a run stops
# at the first non-finite step.
DIVERGE = ("train", "--dataset", "digits", "--steps", "1", "--log-every", "1", "--device", "cpu", "--quiet")
EVAL = ("--n-examples", "30", "--steps", "2", "--device", "cpu", "--quiet")


def finite_weights(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["model"]
    return all(bool(t.isfinite().all()) for t in state.values() if t.is_floating_point())


# --- the TRADES NaN ------------------------------------------------------------------------------


def reference_kl_with_probabilities(logits_nat, logits_adv):
    """The TRADES loss's KL as wmrbench computed it before: p(x) as probabilities."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="none").sum(1)


@pytest.mark.parametrize("gap", [20.0, 110.0, 1000.0])
def test_trades_loss_has_finite_gradients_when_the_natural_softmax_saturates(gap):
    # A logit gap above ~104 makes float32 softmax probabilities exactly 0. With p(x) as the KL's
    # target, d KL / d p = log 0 + 1 = -inf, and softmax's backward turns 0 * -inf into NaN.
    y = torch.tensor([0, 3])
    logits_nat = torch.zeros(2, 10)
    logits_nat[:, 0] = gap
    logits_adv = logits_nat.clone()
    logits_adv[:, 5] = gap / 2
    nat, adv = logits_nat.clone().requires_grad_(True), logits_adv.clone().requires_grad_(True)
    objective = trades_objective(nat, adv, y, alpha=0.0, beta=6.0)
    objective.loss.backward()
    assert objective.loss.isfinite() and nat.grad.isfinite().all() and adv.grad.isfinite().all()

    nat_ref = logits_nat.clone().requires_grad_(True)
    reference = reference_kl_with_probabilities(nat_ref, logits_adv)
    assert torch.allclose(6.0 * reference.mean() + F.cross_entropy(logits_nat, y), objective.loss.detach())
    reference.sum().backward()
    assert nat_ref.grad.isfinite().all() == (gap < 104)  # the old formula: NaN once saturated


def test_trades_training_of_a_saturated_model_stays_finite(tmp_path):
    # What ResNet-18 TRADES on random CIFAR-shaped data reached in its 14th step of the first epoch
    # (a train-mode logit gap of 121; reproduced on the CPU, docs/reliability.md): a model whose
    # softmax saturates. Here a digits model's last layer is scaled to get there at once; the old
    # loss made every weight NaN in the first step ("training diverged", exit 2).
    out = invoke(*TRAIN, "--epochs", "2", "--stop-after-epochs", "1", "--run", "sat", "--checkpoint-dir", tmp_path)
    assert out.exit_code == 0, out.output
    last = tmp_path / "sat" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    for name in ("classifier.fc2.weight", "classifier.fc2.bias"):
        checkpoint["model"][name] *= 1000.0
    torch.save(checkpoint, last)

    # The scaled model's mean loss (3e4) is far over the divergence rule's ceiling: this
    # test is about finite gradients, so it trains on.
    out = invoke("train", "--run", "sat", "--resume", "--epochs", "2", "--checkpoint-dir", tmp_path, "--device", "cpu",
                 "--quiet", "--no-divergence-stop")

    assert out.exit_code == 0, out.output
    assert finite_weights(last) and torch.load(last, weights_only=True)["epoch"] == 2


# --- divergence guard ----------------------------------------------------------------------------

DIVERGED = re.compile(r"training diverged: the loss became (nan|inf) in epoch (\d+) \(lr ([^)]+)\), steps? [\d-]+ of \d+")


def test_a_run_that_diverges_in_its_first_epoch_stops_and_writes_nothing(tmp_path):
    out = invoke(*DIVERGE, "--epochs", "3", "--lr", "1e6", "--checkpoint-dir", tmp_path / "ck", "--run", "big-lr")
    line = assert_one_line_error(out, "no checkpoint was written", "--lr (now 1e+06)")
    assert DIVERGED.search(line).group(2) == "1"
    assert files_under(tmp_path) == set()  # no NaN weights saved, no empty folder left


def test_a_run_that_diverges_later_keeps_its_last_good_checkpoint(tmp_path):
    # lr 0.05 in epoch 1, then x1e7 at milestone 1: epoch 2 runs at lr 5e5 and diverges.
    out = invoke(*DIVERGE, "--batch-size", "256", "--epochs", "3", "--milestones", "1", "--gamma", "1e7",
                 "--checkpoint-dir", tmp_path, "--run", "later")
    last = tmp_path / "later" / "last.pt"
    line = assert_one_line_error(out, f"the last good checkpoint {last} (epoch 1) is kept")
    assert DIVERGED.search(line).group(2, 3) == ("2", "500000")
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 1 and finite_weights(last)
    history = [json.loads(line) for line in (tmp_path / "later" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1] and math.isfinite(history[0]["loss"])


def test_a_weighted_run_whose_weights_overflow_names_alpha_train(tmp_path):
    # exp(-alpha * margin) overflows float32 for alpha * |margin| > 88: the loss is inf or NaN.
    out = invoke(*DIVERGE, "--epochs", "2", "--alpha-train", "500", "--checkpoint-dir", tmp_path, "--run", "a500")
    assert_one_line_error(out, "training diverged", "--alpha-train (now 500)")


# --- evaluate refuses a model that is not finite -------------------------------------------------


def _edited_checkpoint(source: Path, target: Path, edit) -> Path:
    checkpoint = torch.load(source, weights_only=True)
    for name, tensor in checkpoint["model"].items():
        if tensor.is_floating_point():
            checkpoint["model"][name] = edit(name, tensor)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def test_evaluate_and_attack_refuse_a_model_with_nan_weights(tmp_path, digits_runs):
    nan = _edited_checkpoint(digits_runs["trades-a0"], tmp_path / "nan" / "last.pt",
                             lambda name, t: t.fill_(float("nan")) if name == "classifier.fc2.bias" else t)
    for command in ("evaluate", "attack"):
        out = invoke(command, "--checkpoint", nan, *EVAL, "--results-dir", tmp_path / "results")
        assert_one_line_error(out, "has non-finite weights (classifier.fc2.bias)")
    assert not (tmp_path / "results").exists()


def test_evaluate_refuses_a_model_whose_outputs_are_not_finite(tmp_path, digits_runs):
    huge = _edited_checkpoint(digits_runs["trades-a0"], tmp_path / "huge" / "last.pt", lambda name, t: t.abs() * 1e30)
    out = invoke("evaluate", "--checkpoint", huge, *EVAL, "--results-dir", tmp_path / "results")
    assert_one_line_error(out, "gives non-finite outputs (inf)")
    assert not (tmp_path / "results").exists()


# --- class 8: a huge alpha_test gives finite weights and valid JSON -------------------------------


def test_a_huge_alpha_test_saves_finite_weights_and_a_valid_summary(tmp_path, digits_runs):
    checkpoint = digits_runs["trades-a2"]
    out = invoke("attack", "--checkpoint", checkpoint, *EVAL, "--alpha-test", "100000", "--results-dir", tmp_path)
    assert out.exit_code == 0, out.output
    saved = torch.load(tmp_path / "trades-a2" / "adversarial.pt", weights_only=True)
    weight = saved["attacks"]["100000"]["weight"]
    assert weight.isfinite().all() and abs(float(weight.sum()) - 1.0) < 1e-9
    assert "nan" not in out.stdout.lower()

    out = invoke("evaluate", "--checkpoint", checkpoint, *EVAL, "--alpha-test", "0,100000", "--results-dir",
                 tmp_path / "results")
    assert out.exit_code == 0, out.output

    def refuse(constant):
        raise AssertionError(f"summary.json holds {constant}")

    metrics = json.loads((tmp_path / "results" / "trades-a2" / "summary.json").read_text(),
                         parse_constant=refuse)["metrics"]
    numbers = [metrics["A_nat"], metrics["A_rob"], *metrics["A_sa"].values(), *metrics["A_tr"].values()]
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in numbers)
