"""One evaluation resolves its device once, at its start, and passes that torch.device down
(``evaluate``, ``evaluate --resume``, ``--seeds``, ``attack``, ``--adversarial`` and the API);
the model is moved there and nowhere else, never to the CPU behind the user's back.

Device-agnostic: the CPU build has one device type, so the resolution is marked instead. The
spy resolves "cpu" to ``torch.device("cpu", 0)``: the same memory, but a different object from
``torch.device("cpu")`` (they compare unequal), so a model moved by any other path than the
resolved device (``model.cpu()``, ``.to("cpu")``, a second resolution) is seen.
"""

from __future__ import annotations

import pytest
import torch

from torch import nn

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, invoke, require_mnist
from wmrbench.core import distributed

MARKED = torch.device("cpu", 0)  # what the spy resolves "cpu" to: distinguishable from torch.device("cpu")

COMMON = ("--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", MNIST_DIR,
          "--n-examples", "8", "--batch-size", "4", "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--quiet")


@pytest.fixture
def module_moves(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """The device of every move of any nn.Module (``.to(device)``, ``.cpu()``, ``.cuda()``)."""
    moves: list[torch.device] = []
    to, cpu, cuda = nn.Module.to, nn.Module.cpu, nn.Module.cuda

    def spied_to(self, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            moves.append(device)
        return to(self, *args, **kwargs)

    def spied_cpu(self):
        moves.append(torch.device("cpu"))
        return cpu(self)

    def spied_cuda(self, device=None):
        moves.append(torch.device("cuda", device) if isinstance(device, int) else torch.device("cuda"))
        return cuda(self, device)

    monkeypatch.setattr(nn.Module, "to", spied_to)
    monkeypatch.setattr(nn.Module, "cpu", spied_cpu)
    monkeypatch.setattr(nn.Module, "cuda", spied_cuda)
    return moves


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of distributed.resolve_device (the name every module calls it by)."""
    calls: list[str] = []
    real = distributed.resolve_device

    def counted(device: str) -> torch.device:
        calls.append(device)
        resolved = real(device)
        return MARKED if resolved == torch.device("cpu") else resolved

    monkeypatch.setattr(distributed, "resolve_device", counted)
    return calls


def test_each_command_resolves_the_device_once(resolutions: list[str], module_moves, tmp_path) -> None:
    """Once, and the model goes to that device and no other."""
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
        module_moves.clear()
        out = invoke(*args)
        assert out.exit_code == 0, out.output
        assert resolutions == ["cpu"], (args[0], resolutions)
        assert module_moves and set(module_moves) == {MARKED}, (args, module_moves)


def test_a_resumed_evaluation_resolves_the_device_once(resolutions: list[str], module_moves, tmp_path, monkeypatch) -> None:
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
    module_moves.clear()
    out = invoke("evaluate", *COMMON, "--results-dir", results, "--run", "stopped", "--resume")
    assert out.exit_code == 0, out.output
    assert resolutions == ["cpu"]
    assert module_moves and set(module_moves) == {MARKED}, module_moves


def test_the_api_resolves_the_device_once(resolutions: list[str], mnist_model, mnist_test) -> None:
    from wmrbench.evaluation.api import evaluate

    evaluate(mnist_model, mnist_test.images(torch.arange(8)), mnist_test.y[:8], dataset="mnist", steps=1,
             batch_size=4, alpha_test=(1.0,), seeds=(0, 1), device="cpu")
    assert resolutions == ["cpu"]


class Recorded(nn.Module):
    """A user's model that records every move: each ``.to()`` / ``.cpu()`` / ``.cuda()`` call with
    the device it asks for (None: a dtype or memory format only), and the device of every input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.moves: list[tuple[str, torch.device | None]] = []
        self.inputs: list[torch.device] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.device)
        return self.inner(x)

    def to(self, *args, **kwargs):  # type: ignore[override]
        self.moves.append(("to", torch._C._nn._parse_to(*args, **kwargs)[0]))
        return super().to(*args, **kwargs)

    def cpu(self):  # type: ignore[override]
        self.moves.append(("cpu", torch.device("cpu")))
        return super().cpu()

    def cuda(self, device=None):  # type: ignore[override]
        self.moves.append(("cuda", torch.device("cuda", device) if isinstance(device, int) else device))
        return super().cuda(device)


def test_the_api_moves_the_model_only_to_the_resolved_device(resolutions: list[str], mnist_model, mnist_test) -> None:
    """Twice, as a notebook does: the second call finds the model where the first left it. Every
    move of the model goes to the one resolved device; none is ``.cpu()`` (which moved a model an
    earlier call had put on CUDA back to the CPU, away from inputs on CUDA)."""
    from wmrbench.evaluation.api import evaluate

    model = Recorded(mnist_model)
    x, y = mnist_test.images(torch.arange(8)), mnist_test.y[:8]
    for _ in range(2):
        evaluate(model, x, y, dataset="mnist", steps=1, batch_size=4, alpha_test=(1.0,), device="cpu")
    assert resolutions == ["cpu", "cpu"]
    moved_to = [device for _, device in model.moves if device is not None]
    assert moved_to and all(device == MARKED for device in moved_to), model.moves
    assert not [how for how, _ in model.moves if how != "to"], model.moves
    assert model.inputs and all(d.type == "cpu" for d in model.inputs)


def test_the_api_leaves_the_model_on_its_device_with_its_mode_and_requires_grad(mnist_model, mnist_test) -> None:
    """What docs/api.md says evaluate does to a model: left on ``device``, its train/eval mode and
    every parameter's requires_grad as they were (the attacks freeze them while they run)."""
    from wmrbench.evaluation.api import evaluate

    x, y = mnist_test.images(torch.arange(4)), mnist_test.y[:4]
    frozen = next(iter(mnist_model.parameters()))
    frozen.requires_grad_(False)  # one frozen layer, as a fine-tuner leaves it: it stays frozen
    for training in (True, False):
        mnist_model.train(training)
        evaluate(mnist_model, x, y, dataset="mnist", steps=1, alpha_test=(1.0,), device="cpu")
        assert mnist_model.training is training
        assert [p.requires_grad for p in mnist_model.parameters()] == [p is not frozen for p in mnist_model.parameters()]
        assert all(p.device.type == "cpu" for p in mnist_model.parameters())
