"""``wmrbench.evaluation.api.evaluate``: the command's numbers from Python, on real MNIST.

The API and ``wmrbench evaluate`` run one loop (runs.attack_examples) and one summary
(pipeline.summarize): on the same model, examples, settings and seed their records are the same
to the last bit, and so is every metric, interval and n_eff. Inputs in any form (tensors, a
DataLoader, a Dataset) give the same records; bad input is one WmrbenchError line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, invoke
from wmrbench.core.defaults import DEFAULTS
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation.api import EvaluationResult, evaluate
from wmrbench.results.records import RECORDS_NAME, SUMMARY_NAME, read_summary, to_csv_text

N = 64
# A strong enough attack that the model errs on some examples (so that A_rob, A_sa and A_tr are
# not all 100 and the weights differ), at a CPU cost of a few seconds.
ATTACK = {"eps": 0.4, "steps": 8, "step_size": 0.05}
SETTINGS = {**ATTACK, "alpha_test": (0.0, 1.0, 2.0), "batch_size": 24, "seed": 7}


def _mnist_examples(mnist_test, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist_test.images(torch.arange(n)), mnist_test.y[:n]


def _cli_result(results, run: str, *extra: str):
    args = ["evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
            "--data-dir", MNIST_DIR, "--n-examples", str(N), "--eps", str(ATTACK["eps"]), "--steps", str(ATTACK["steps"]),
            "--step-size", str(ATTACK["step_size"]), "--alpha-test", "0,1,2", "--batch-size", str(SETTINGS["batch_size"]),
            "--seed", str(SETTINGS["seed"]), "--device", "cpu", "--precision", "fp32", "--results-dir", results,
            "--run", run, "--quiet", *extra]
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    return read_summary(results / run / SUMMARY_NAME), (results / run / RECORDS_NAME).read_text()


def test_the_api_gives_the_cli_numbers_on_real_mnist(mnist_model, mnist_test, tmp_path) -> None:
    x, y = _mnist_examples(mnist_test)
    result = evaluate(mnist_model, x, y, dataset="mnist", device="cpu", **SETTINGS)
    summary, csv_text = _cli_result(tmp_path, "cli")

    # Per example: the CLI's records.csv, byte for byte (every margin to float32's last bit).
    assert to_csv_text(result.records) == csv_text
    assert result.records.shape == (N, len(pd.read_csv(tmp_path / "cli" / RECORDS_NAME).columns))
    # Every metric, exactly, and the intervals and n_eff of the same seeded bootstrap.
    assert result.summary.metrics == summary.metrics
    assert result.A_nat == summary.metrics.A_nat and result.A_rob == summary.metrics.A_rob
    for table in ("A_sa", "A_tr", "A_wc"):
        assert getattr(result, table) == getattr(summary.metrics, table)  # both keyed by the alphas, as floats
    assert result.intervals == summary.uncertainty
    assert result.summary.records_sha256 == summary.records_sha256
    assert result.config.attack == summary.config.attack and result.config.alpha_test == summary.config.alpha_test
    # The numbers are not trivial: the attack found errors, and the weights moved A_tr below A_rob.
    assert 0 < result.A_rob < result.A_nat <= 100
    assert result.A_tr[2.0] < result.A_rob and result.A_tr[0.0] == result.A_rob
    assert result.n_eff(2.0) < N
    assert result.out_dir is None


def test_tensors_a_dataloader_and_a_dataset_give_the_same_result(mnist_model, mnist_test) -> None:
    x, y = _mnist_examples(mnist_test, 40)
    settings = {**SETTINGS, "steps": 3, "eps": 0.3, "device": "cpu"}
    tensors = evaluate(mnist_model, x, y, **settings)
    # Batches of a size unrelated to batch_size: the loader's batching changes nothing.
    loader = evaluate(mnist_model, DataLoader(TensorDataset(x, y), batch_size=7, shuffle=False), **settings)
    dataset = evaluate(mnist_model, TensorDataset(x, y), **settings)
    # n_examples cuts the first examples, from a longer loader as from tensors.
    x_more, y_more = _mnist_examples(mnist_test, 60)
    cut = evaluate(mnist_model, DataLoader(TensorDataset(x_more, y_more), batch_size=16), n_examples=40, **settings)
    for other in (loader, dataset, cut):
        pd.testing.assert_frame_equal(other.records, tensors.records)
        assert other.summary.metrics == tensors.summary.metrics
        assert other.intervals == tensors.intervals
    # Without a data set, the given eps and steps ran with the library's step rule: the default
    # walk's reach, steps * step_size / eps, kept (wmrbench.core.defaults).
    assert tensors.config.dataset is None
    assert tensors.config.attack.step_size == SETTINGS["step_size"]
    default_step = evaluate(mnist_model, x[:8], y[:8], eps=0.3, steps=4, device="cpu", alpha_test=1.0)
    budget = DEFAULTS.eval_attack
    assert 4 * default_step.config.attack.step_size / 0.3 == pytest.approx(budget.steps * budget.step_size / budget.eps)
    assert default_step.config.alpha_test == (1.0,)


def test_the_model_keeps_its_mode_and_nothing_is_written(mnist_model, mnist_test) -> None:
    x, y = _mnist_examples(mnist_test, 8)
    mnist_model.train()
    result = evaluate(mnist_model, x, y, dataset="mnist", steps=1, device="cpu")
    assert mnist_model.training  # the attack ran in eval mode; the caller's mode is back
    assert isinstance(result, EvaluationResult) and result.n_examples == 8
    assert list(Path.cwd().iterdir()) == []  # no results/ (nor anything else) where a result would go
    text = str(result)
    assert "A_rob" in text and "A_tr" in text and "n_eff" in text and "8 examples (mnist)" in text
    lo, hi = result.interval("A_rob")
    assert lo <= result.A_rob <= hi


def test_results_dir_writes_the_command_result(mnist_model, mnist_test, tmp_path) -> None:
    x, y = _mnist_examples(mnist_test, 16)
    result = evaluate(mnist_model, x, y, dataset="mnist", steps=2, device="cpu", results_dir=tmp_path, run="api")
    assert result.out_dir == tmp_path / "api"
    written = read_summary(tmp_path / "api" / SUMMARY_NAME)  # its records' hash checked too
    assert written.metrics == result.summary.metrics and written.model.source == "python"
    assert (tmp_path / "api" / RECORDS_NAME).read_text() == to_csv_text(result.records)
    assert json.loads((tmp_path / "api" / SUMMARY_NAME).read_text())["config"]["dataset"] == "mnist"
    # A complete result is not replaced unless asked.
    with pytest.raises(WmrbenchError, match="already exists"):
        evaluate(mnist_model, x, y, dataset="mnist", steps=2, device="cpu", results_dir=tmp_path, run="api")
    again = evaluate(mnist_model, x, y, dataset="mnist", steps=2, device="cpu", results_dir=tmp_path, run="api", overwrite=True)
    assert again.summary.metrics == result.summary.metrics


# Errors the checks of wmrbench.core.config word (alpha_test, attack, dataset, device): their
# --flag wording is the CLI boundary's to translate, not this module's.
CONFIG_WORDED = ("alpha", "attack", "dataset", "device")


def _one_line(exc: pytest.ExceptionInfo[WmrbenchError], *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message, message
    if not fragments or fragments[0] not in CONFIG_WORDED:
        assert "--" not in message, message  # the API's own lines name settings by their Python names
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("make", "fragments"), [
    (lambda x, y: ((x[:, 0], y), {"eps": 0.3}), ("shape (4, 28, 28)", "(N, C, H, W)")),
    (lambda x, y: ((x * 2.0, y), {"eps": 0.3}), ("[0, 2]", "[0, 1]")),
    (lambda x, y: ((x - 0.5, y), {"eps": 0.3}), ("[-0.5", "[0, 1]")),
    (lambda x, y: ((x, None), {"eps": 0.3}), ("y is needed",)),
    (lambda x, y: ((x, y[:3]), {"eps": 0.3}), ("one label per image",)),
    (lambda x, y: ((x, y.float()), {"eps": 0.3}), ("integer class indices",)),
    (lambda x, y: (((x * 255).to(torch.uint8), y), {"eps": 0.3}), ("torch.uint8", "[0, 1]")),
    (lambda x, y: ((x, y), {"eps": 0.3, "alpha_test": (-1.0,)}), ("alpha", ">= 0")),
    (lambda x, y: ((x, y), {"eps": 0.3, "attack": "fgsm"}), ("attack", "pgd")),
    (lambda x, y: ((x, y), {"dataset": "imagenet21k"}), ("dataset", "mnist")),
    (lambda x, y: ((x, y), {"eps": 0.3, "results_dir": "out"}), ("results_dir", "dataset=")),
    (lambda x, y: ((x, y), {"eps": 0.3, "device": "tpu"}), ("device",)),
    (lambda x, y: (([1, 2, 3],), {"eps": 0.3}), ("(images, labels)",)),
])
def test_bad_input_is_one_line(mnist_model, mnist_test, make, fragments) -> None:
    x, y = _mnist_examples(mnist_test, 4)
    args, kwargs = make(x, y)
    with pytest.raises(WmrbenchError) as exc:
        evaluate(mnist_model, *args, **{"device": "cpu", **kwargs})
    _one_line(exc, *fragments)


def test_a_model_that_does_not_fit_the_images_is_one_line(mnist_model) -> None:
    x = torch.rand(4, 3, 32, 32)  # CIFAR-shaped images for an MNIST model
    with pytest.raises(WmrbenchError) as exc:
        evaluate(mnist_model, x, torch.zeros(4, dtype=torch.long), eps=0.1, device="cpu")
    _one_line(exc, "cannot take inputs of shape (3, 32, 32)")


def test_one_channel_images_without_dataset_or_eps_warn_of_the_cifar_budget(mnist_model, mnist_test) -> None:
    """The library's default budget is CIFAR-10's (eps 0.031); on MNIST-shaped images, whose threat
    model is eps 0.3, a result made with it says so instead of passing silently."""
    x, y = _mnist_examples(mnist_test, 4)
    with pytest.warns(UserWarning, match="CIFAR-10 budget .eps 0.031. attacks these one-channel images"):
        result = evaluate(mnist_model, x, y, steps=1, device="cpu")
    assert result.summary.config.attack.eps == DEFAULTS.eval_attack.eps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # eps given: the user chose the threat model, nothing to say
        evaluate(mnist_model, x, y, eps=0.3, steps=1, device="cpu")


def test_an_l2_attack_without_eps_or_dataset_is_refused_in_one_line(mnist_model, mnist_test) -> None:
    x, y = _mnist_examples(mnist_test, 4)
    with pytest.raises(WmrbenchError) as exc:
        evaluate(mnist_model, x, y, norm="l2", device="cpu")
    _one_line(exc, "with norm='l2' give eps")
    assert evaluate(mnist_model, x, y, norm="l2", eps=2.0, steps=1, device="cpu").n_examples == 4
