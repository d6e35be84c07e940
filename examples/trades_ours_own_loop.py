"""TRADES + ours (the paper's weighted TRADES, alpha_train 2) inside a plain PyTorch training loop.

    uv run python examples/trades_ours_own_loop.py [EPOCHS]

The user's own model (a tiny CNN defined here) and the user's own data (scikit-learn's 8x8
digits, 1,437 images to train on, the last 360 to test); ``wmrbench.losses.trades`` is the one
line that runs the training attack and the weighted loss. Then ``wmrbench.WeightedPGD`` and the
metrics score the result. One epoch by default: a few seconds on one CPU core.
"""

from __future__ import annotations

import sys

import torch
from sklearn.datasets import load_digits
from torch import nn

import wmrbench

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
torch.manual_seed(0)

digits = load_digits()  # 1,797 images, 8x8, values 0..16 -> [0, 1]
x_all = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y_all = torch.tensor(digits.target, dtype=torch.int64)
x_train, y_train, x_test, y_test = x_all[:1437], y_all[:1437], x_all[1437:], y_all[1437:]

model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
    nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
attack_noise = torch.Generator().manual_seed(0)  # the training attack's starts

# wmrbench's digits preset: eps 0.1, 10 attack steps of 0.025; beta 6; alpha_train 2 ("+ours").
for epoch in range(epochs):
    order = torch.randperm(len(y_train))
    losses, weights = [], []
    for lo in range(0, len(order), 64):
        batch = order[lo:lo + 64]
        out = wmrbench.losses.trades(model, x_train[batch], y_train[batch], eps=0.1, step_size=0.025, steps=10,
                                     alpha=2.0, beta=6.0, generator=attack_noise)
        optimizer.zero_grad()
        out.loss.backward()  # the model is in train mode here (losses.trades leaves it so)
        optimizer.step()
        losses.append(out.loss.item())
        weights.append(out.weights.mean().item())
    print(f"epoch {epoch + 1} loss first {losses[0]:.4f} last {losses[-1]:.4f} "
          f"mean {sum(losses) / len(losses):.4f} mean_weight {sum(weights) / len(weights):.3f}")

model.eval()
with torch.no_grad():
    clean_correct = model(x_test).argmax(dim=1) == y_test
rob = wmrbench.WeightedPGD(model, eps=0.1, step_size=0.01, steps=20, alpha=0.0).run(x_test, y_test)
tr = wmrbench.WeightedPGD(model, eps=0.1, step_size=0.01, steps=20, alpha=2.0).run(x_test, y_test)
print(f"n {len(y_test)}")
print(f"A_nat {wmrbench.accuracy(clean_correct):.2f}")
print(f"A_rob {wmrbench.accuracy(rob.correct):.2f}")
print(f"A_sa@2 {wmrbench.weighted_accuracy(rob.correct, rob.margin, 2.0):.2f}")
print(f"A_tr@2 {wmrbench.weighted_accuracy(tr.correct, tr.margin, 2.0):.2f}")
