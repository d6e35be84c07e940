"""Every registered architecture runs forward and backward at its natural input size, and the
paper-scale ones keep the layer names of the code whose released checkpoints they must load."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from wmrbench.models import create_model, list_models, model_spec
from wmrbench.models.checkpoint import load_state_into

# WideResNet-34-10 is 46M parameters: a batch of 2 keeps the CPU test short.
BATCH = {"wrn34_10": 2, "preactresnet18": 2, "resnet18": 2}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_forward_and_backward(name: str) -> None:
    spec = model_spec(name)
    channels, height, width = spec.input_shape
    num_classes = 200 if name == "preactresnet18" else 10  # as create_model is called for Tiny ImageNet
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_channels=channels).train()
    with torch.no_grad():  # a zero-initialised last layer (TRADES' SmallCNN) would stop every gradient
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0.0, 0.01)
    x = torch.rand(BATCH.get(name, 4), channels, height, width, requires_grad=True)
    logits = model(x)
    assert logits.shape == (x.shape[0], num_classes)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.arange(x.shape[0]) % num_classes).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the attack needs input gradients
    used = [p for p in model.parameters() if p.grad is not None]
    assert used and all(torch.isfinite(p.grad).all() for p in used)


def test_preactresnet18_takes_any_input_size() -> None:
    model = create_model("preactresnet18", num_classes=200).eval()
    with torch.no_grad():
        for size in (32, 40):  # 64 is its natural size, run above
            assert model(torch.rand(1, 3, size, size)).shape == (1, 200)


def _robustbench_architecture(module: str) -> ModuleType:
    """RobustBench's architecture file, loaded on its own (the package import is slow and
    pulls in AutoAttack; the file only needs torch)."""
    spec = importlib.util.find_spec("robustbench")
    if spec is None or spec.origin is None:
        pytest.skip("robustbench is not installed")
    path = Path(spec.origin).parent / "model_zoo" / "architectures" / f"{module}.py"
    loaded = importlib.util.spec_from_file_location(f"_robustbench_{module}", path)
    assert loaded is not None and loaded.loader is not None
    mod = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(mod)
    return mod


def test_wrn34_10_loads_the_trades_checkpoint_layout_and_computes_the_same() -> None:
    """RobustBench builds TRADES' released WRN-34-10 (Zhang2019Theoretically) as
    WideResNet(depth=34, widen_factor=10, sub_block1=True): its state_dict must load into ours
    strictly and give the same logits."""
    wide_resnet = _robustbench_architecture("wide_resnet")
    torch.manual_seed(0)
    reference = wide_resnet.WideResNet(depth=34, widen_factor=10, sub_block1=True).eval()
    ours = create_model("wrn34_10").eval()
    load_state_into(ours, reference.state_dict(), "TRADES WRN-34-10")
    names = set(ours.state_dict())
    assert {"conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.conv1.weight",
            "block1.layer.0.convShortcut.weight", "block2.layer.4.conv2.weight", "bn1.running_mean",
            "fc.weight"} <= names
    x = torch.rand(1, 3, 32, 32)  # one image: a WRN-34-10 forward takes seconds on a small CPU
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_preactresnet18_loads_the_robust_overfitting_layout_and_computes_the_same() -> None:
    """Rice et al.'s PreActResNet-18 (RobustBench: PreActResNet(PreActBlockV2, bn_before_fc=True))."""
    resnet = _robustbench_architecture("resnet")
    torch.manual_seed(0)
    reference = resnet.PreActResNet(resnet.PreActBlockV2, [2, 2, 2, 2], bn_before_fc=True).eval()
    ours = create_model("preactresnet18", num_classes=10).eval()
    load_state_into(ours, reference.state_dict(), "PreActResNet-18")
    x = torch.rand(2, 3, 32, 32)  # RobustBench's version pools 4x4: the 32x32 case
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
