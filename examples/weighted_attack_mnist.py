"""Weighted PGD and the paper's four metrics on a real robust MNIST model, in plain PyTorch.

    uv run python examples/weighted_attack_mnist.py [CHECKPOINT] [MNIST_DIR] [N]

Defaults: the TRADES SmallCNN ``../shared/data/models/trades_mnist_smallcnn.pt`` (a plain
state_dict) and MNIST under ``../shared/data/mnist`` (torchvision's layout), both relative to
the repository root, and the first 100 test images. About 10 s on one CPU core.

A_nat: clean accuracy. A_rob: accuracy under plain PGD (alpha 0). A_sa(alpha): the same PGD
points, each counted with its weight exp(-alpha * margin) normalized over the examples.
A_tr(alpha): weighted PGD run at alpha, then the same weighted accuracy. n_eff = (sum s)^2 /
sum s^2 says how many examples a weighted metric effectively rests on; ``wmrbench evaluate``
adds bootstrap intervals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torchvision.datasets import MNIST

import wmrbench

REPO = Path(__file__).resolve().parent.parent
args = sys.argv[1:]
checkpoint = Path(args[0]) if len(args) > 0 else REPO / "../shared/data/models/trades_mnist_smallcnn.pt"
data_dir = Path(args[1]) if len(args) > 1 else REPO / "../shared/data/mnist"
n = int(args[2]) if len(args) > 2 else 100

# The model: a registered architecture with the checkpoint's weights (inputs in [0, 1]).
model = wmrbench.create_model("smallcnn", num_classes=10, in_channels=1)
model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
model.eval()

# The first n test images as [0, 1] float tensors (N, 1, 28, 28).
test = MNIST(str(data_dir), train=False, download=False)
x, y = test.data[:n].unsqueeze(1).float() / 255.0, test.targets[:n]

# The paper's MNIST evaluation attack: eps 0.3, 40 steps of 0.01, one uniform start.
settings = dict(eps=0.3, step_size=0.01, steps=40, seed=0)
with torch.no_grad():
    clean_correct = model(x).argmax(dim=1) == y
rob = wmrbench.WeightedPGD(model, alpha=0.0, **settings).run(x, y)

print(f"n {n}")
print(f"A_nat {wmrbench.accuracy(clean_correct):.2f}")
print(f"A_rob {wmrbench.accuracy(rob.correct):.2f}")
for alpha in (1.0, 2.0):
    tr = wmrbench.WeightedPGD(model, alpha=alpha, **settings).run(x, y)
    a_sa = wmrbench.weighted_accuracy(rob.correct, rob.margin, alpha)
    a_tr = wmrbench.weighted_accuracy(tr.correct, tr.margin, alpha)
    n_eff = 1.0 / (wmrbench.normalized_weights(tr.margin, alpha) ** 2).sum()
    print(f"A_sa@{alpha:g} {a_sa:.2f}")
    print(f"A_tr@{alpha:g} {a_tr:.2f} n_eff {n_eff:.1f}")
