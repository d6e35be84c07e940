"""Weighted PGD and the paper's metrics on a real robust MNIST model, through the public API.

    uv run python examples/weighted_attack_mnist.py [--checkpoint PATH] [--data-dir DIR] [--n N]

Defaults, inside the repository: the TRADES SmallCNN state_dict at
``models/trades_mnist_smallcnn.pt`` and MNIST under ``data`` (torchvision's layout, ``MNIST/raw/``,
where ``wmrbench evaluate --dataset mnist --download`` puts it), and the first
100 test images (``models/`` is where ``wmrbench evaluate`` keeps downloaded models). Pass other
paths to use files kept elsewhere (the tests pass ``../shared/data/...``). About 15 s on one
CPU core.

A_nat: clean accuracy. A_rob: accuracy under plain PGD (alpha 0). A_sa(alpha): the same PGD
points, each counted with its weight exp(-alpha * margin) normalized over the examples.
A_tr(alpha): weighted PGD run at alpha, then the same weighted accuracy. n_eff = (sum s)^2 /
sum s^2: how many examples A_sa effectively rests on. Every number has its 95% interval.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.datasets import MNIST

import wmrbench

REPO = Path(__file__).resolve().parent.parent
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--checkpoint", type=Path, default=REPO / "models" / "trades_mnist_smallcnn.pt",
                    help="a SmallCNN state_dict (default: models/trades_mnist_smallcnn.pt in the repository)")
parser.add_argument("--data-dir", type=Path, default=REPO / "data",
                    help="the folder holding MNIST/raw/ (default: data in the repository)")
parser.add_argument("--n", type=int, default=100, help="the first N test images (default 100)")
args = parser.parse_args()

# The model: a registered architecture with the checkpoint's weights (inputs in [0, 1]).
model = wmrbench.create_model("smallcnn", num_classes=10, in_channels=1)
model.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True))

# The first n test images as [0, 1] float tensors (N, 1, 28, 28).
test = MNIST(str(args.data_dir), train=False, download=False)
x, y = test.data[:args.n].unsqueeze(1).float() / 255.0, test.targets[:args.n]

# One weighted attack by hand: the weight exp(-alpha * margin) stays in the attack's objective.
points = wmrbench.WeightedPGD(model, eps=0.3, step_size=0.01, steps=40, alpha=2.0).run(x, y)
print(f"weighted PGD at alpha 2 misclassifies {int((~points.correct).sum())} of the {args.n} images")

# The paper's MNIST evaluation (PGD-40 of 0.01 at eps 0.3, as `wmrbench evaluate --dataset mnist`):
# A_rob, A_sa and A_tr at each alpha_test, with 95% intervals and n_eff. Nothing is written.
result = wmrbench.evaluate(model, x, y, dataset="mnist", alpha_test=(1, 2), device="cpu")


def shown(value: float, lo_hi: tuple[float, float]) -> str:
    return f"{value:.2f} [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]"


print(f"n {result.n_examples}")
print(f"A_nat {shown(result.A_nat, result.interval('A_nat'))}")
print(f"A_rob {shown(result.A_rob, result.interval('A_rob'))}")
for alpha in (1.0, 2.0):
    print(f"A_sa@{alpha:g} {shown(result.A_sa[alpha], result.interval('A_sa', alpha))} n_eff {result.n_eff(alpha):.1f}")
    print(f"A_tr@{alpha:g} {shown(result.A_tr[alpha], result.interval('A_tr', alpha))}")
