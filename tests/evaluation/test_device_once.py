"""One evaluation resolves its device once, at its start, and passes the torch.device down
(``evaluate``, ``evaluate --resume``, ``--seeds``, ``attack``, ``--adversarial`` and the API)."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, invoke, require_mnist
from wmrbench import distributed

COMMON = ("--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", MNIST_DIR,
          "--n-examples", "8", "--batch-size", "4", "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--quiet")


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of distributed.resolve_device (the name every module calls it by)."""
    calls: list[str] = []
    real = distributed.resolve_device

    def counted(device: str) -> torch.device:
        calls.append(device)
        return real(device)

    monkeypatch.setattr(distributed, "resolve_device", counted)
    return calls


def test_each_command_resolves_the_device_once(resolutions: list[str], tmp_path) -> None:
    require_mnist()
    results = tmp_path / "results"
    for args in (
        ("evaluate", *COMMON, "--results-dir", results, "--run", "one"),
        ("evaluate", *COMMON, "--results-dir", results, "--run", "seeds", "--seeds", "0,1"),
        ("attack", *COMMON, "--results-dir", results, "--run", "points"),
        ("evaluate", "--adversarial", results / "points" / "adversarial.pt", "--device", "cpu", "--quiet",
         "--results-dir", results, "--run", "replay"),
    ):
        resolutions.clear()
        out = invoke(*args)
        assert out.exit_code == 0, out.output
        assert resolutions == ["cpu"], (args[0], resolutions)


def test_a_resumed_evaluation_resolves_the_device_once(resolutions: list[str], tmp_path, monkeypatch) -> None:
    require_mnist()
    from wmrbench.evaluation import partial

    results = tmp_path / "results"
    real_save = partial.PartialStore.save

    def save_then_stop(self, number, columns):  # the second batch never finishes: a stopped run
        if number == 1:
            raise KeyboardInterrupt
        return real_save(self, number, columns)

    monkeypatch.setattr(partial.PartialStore, "save", save_then_stop)
    stopped = invoke("evaluate", *COMMON, "--results-dir", results, "--run", "stopped")
    assert stopped.exit_code != 0 and partial.has_partial(results / "stopped")
    monkeypatch.setattr(partial.PartialStore, "save", real_save)
    resolutions.clear()
    out = invoke("evaluate", *COMMON, "--results-dir", results, "--run", "stopped", "--resume")
    assert out.exit_code == 0, out.output
    assert resolutions == ["cpu"]


def test_the_api_resolves_the_device_once(resolutions: list[str], mnist_model, mnist_test) -> None:
    from wmrbench.evaluation.api import evaluate

    evaluate(mnist_model, mnist_test.images(torch.arange(8)), mnist_test.y[:8], dataset="mnist", steps=1,
             batch_size=4, alpha_test=(1.0,), seeds=(0, 1), device="cpu")
    assert resolutions == ["cpu"]
