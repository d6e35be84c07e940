"""--mean / --std: a model that expects normalized inputs is wrapped so that attacks run on [0, 1]
images, and gives the same metrics as the same network with the normalization folded into its
first layer (the real MNIST SmallCNN, whose first convolution has no padding: the fold is exact)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, invoke, require_mnist

MEAN, STD = 0.1307, 0.3081  # MNIST's usual normalization
FACTORY = """
from wmrbench.models import create_model

def build():
    return create_model("smallcnn", num_classes=10, in_channels=1)
"""


def _unfold(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights that expect normalized inputs: conv(x) = conv'((x - m) / s) with w' = w * s and
    b' = b + sum(w) * m. (The checkpoint itself, taking [0, 1] inputs, is the folded network.)"""
    unfolded = dict(state)
    w, b = state["feature_extractor.conv1.weight"], state["feature_extractor.conv1.bias"]
    unfolded["feature_extractor.conv1.weight"] = w * STD
    unfolded["feature_extractor.conv1.bias"] = b + w.sum(dim=(1, 2, 3)) * MEAN
    return unfolded


@pytest.mark.slow  # 2 s measured on a loaded 2-core CPU (tests/README.md)
def test_normalized_model_equals_the_folded_network(tmp_path: Path) -> None:
    require_mnist()
    factory = tmp_path / "nets.py"
    factory.write_text(FACTORY)
    torch.save(_unfold(torch.load(MNIST_CHECKPOINT, map_location="cpu", weights_only=True)), tmp_path / "normalized.pt")
    common = ("--dataset", "mnist", "--data-dir", MNIST_DIR, "--n-examples", "64", "--steps", "10",
              "--alpha-test", "1,2", "--device", "cpu", "--results-dir", tmp_path / "r", "--quiet")
    wrapped = invoke("evaluate", "--model", f"{factory}:build", "--checkpoint", tmp_path / "normalized.pt",
                     "--mean", str(MEAN), "--std", str(STD), "--run", "wrapped", *common)
    assert wrapped.exit_code == 0, wrapped.output
    folded = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--run", "folded", *common)
    assert folded.exit_code == 0, folded.output
    a = json.loads((tmp_path / "r" / "wrapped" / "summary.json").read_text())
    b = json.loads((tmp_path / "r" / "folded" / "summary.json").read_text())
    assert a["model"]["mean"] == [MEAN] and a["model"]["std"] == [STD]
    for key in ("A_nat", "A_rob"):
        assert a["metrics"][key] == b["metrics"][key], key
    for key in ("A_sa", "A_tr"):  # the same points up to float rounding of the two arithmetics
        for alpha, value in a["metrics"][key].items():
            assert abs(value - b["metrics"][key][alpha]) < 0.05, (key, alpha)


def test_bad_normalization_options_are_one_line(tmp_path: Path) -> None:
    require_mnist()
    base = ("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
            "--data-dir", MNIST_DIR, "--results-dir", tmp_path / "r")
    for extra, message in [
        (("--mean", "0.1"), "--mean and --std go together"),
        (("--mean", "0.1,0.2", "--std", "0.3,0.3"), "--mean takes 1 or 1 values"),
        (("--mean", "0.1", "--std", "0"), "--std values must be > 0"),
        (("--mean", "x", "--std", "1"), "--mean takes comma-separated numbers"),
    ]:
        out = invoke(*base, *extra)
        assert out.exit_code == 2 and message in out.stderr, (extra, out.output)
    out = invoke("evaluate", "--model-id", "Standard", "--mean", "0.5", "--std", "0.5")
    assert out.exit_code == 2 and "RobustBench models normalize their inputs themselves" in out.stderr
    assert not (tmp_path / "r").exists()
