"""bf16 autocast and fp32 give the same robust accuracy (A_rob) on a real robust checkpoint.

On the CPU this is kept cheap: the first 400 MNIST test images and PGD-10 (step 0.04, eps 0.3)
instead of the paper's PGD-40 on 1,000; the full 1,000-example PGD-40 check belongs on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SHARED_DATA
from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, Precision
from wmrbench.core.config import DatasetName
from wmrbench.data import load_split
from wmrbench.models.checkpoint import load_model_from_checkpoint

SHARED = SHARED_DATA
CHECKPOINT = SHARED / "models" / "trades_mnist_smallcnn.pt"
MNIST = SHARED / "mnist"
N_EXAMPLES = 400

pytestmark = pytest.mark.slow  # 400 images, PGD-10, twice: 5 s measured on a loaded 2-core CPU (tests/README.md)


@pytest.mark.skipif(
    not (CHECKPOINT.is_file() and (MNIST / "MNIST" / "raw").is_dir()),
    reason=f"needs the real MNIST checkpoint and data under {SHARED}",
)
def test_bf16_and_fp32_robust_accuracy_agree_within_half_a_point() -> None:
    model = load_model_from_checkpoint(CHECKPOINT, "smallcnn", num_classes=10, in_channels=1)
    model.eval()
    data = load_split(DatasetName.MNIST, str(MNIST), train=False).subset(N_EXAMPLES)
    index = torch.arange(len(data))
    x, y = data.images(index), data.y
    robust = {}
    clean = {}
    for precision in (Precision.FP32, Precision.BF16):
        clean[precision] = attacks.predict(model, x, precision)
        # keyed starts: both precisions start every example from the same point
        attack = AttackConfig(eps=0.3, step_size=0.04, steps=10)
        result = attacks.pgd(model, x, y, attack, index=index, seed=0, precision=precision)
        robust[precision] = (result.logits.argmax(1) == y).float().mean().item() * 100
    print(f"A_rob on {N_EXAMPLES} examples, PGD-10: fp32 {robust[Precision.FP32]:.2f}%, bf16 {robust[Precision.BF16]:.2f}%")
    assert not torch.equal(clean[Precision.FP32], clean[Precision.BF16])  # bf16 really ran
    assert robust[Precision.FP32] > 90  # the checkpoint is robust (96.07% under PGD-40 on all 10,000)
    assert abs(robust[Precision.FP32] - robust[Precision.BF16]) <= 0.5
