"""The public TRADES SmallCNN on real MNIST: published figures are reproduced."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, require_mnist
from wmrbench.cli.app import app

# The full MNIST test set (10,000 images), and PGD-40 on 1,000: 15 s and 12 s measured on a loaded
# 2-core CPU (tests/README.md). The fast tier's real-MNIST checks use a few images.
pytestmark = pytest.mark.slow


def evaluate(tmp_path, *args):
    require_mnist()
    result = CliRunner().invoke(app, [
        "evaluate", "--checkpoint", str(MNIST_CHECKPOINT), "--arch", "smallcnn", "--dataset", "mnist",
        "--data-dir", str(MNIST_DIR), "--results-dir", str(tmp_path), "--run", "trades-mnist",
        "--device", "cpu", "--quiet", *args,
    ])
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "trades-mnist" / "summary.json").read_text())["metrics"]


def test_natural_accuracy_is_the_published_99_48(tmp_path):
    # eps 0: the attack cannot move, so only the clean accuracy is measured, on all 10,000 images.
    m = evaluate(tmp_path, "--eps", "0", "--steps", "0", "--alpha-test", "1", "--batch-size", "1000")
    assert m["n_examples"] == 10_000
    assert round(m["A_nat"], 2) == 99.48
    assert m["A_rob"] == m["A_nat"]


def test_pgd40_robust_accuracy_is_near_the_published_96_07(tmp_path):
    # The paper's MNIST attack (PGD-40, eps 0.3, step 0.01) on the first 300 images; the published
    # 96.07% is over all 10,000. A broken attack would leave ~99%, a broken model far less.
    m = evaluate(tmp_path, "--n-examples", "300", "--alpha-test", "2", "--batch-size", "150")
    assert 93.0 <= m["A_rob"] <= 98.5
    assert m["A_sa"]["2"] < m["A_rob"] - 20  # the non-uniform attacker hurts, as in Table 1
    assert m["A_tr"]["2"] <= m["A_sa"]["2"] + 1.0
