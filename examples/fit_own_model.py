"""TRADES+ours (alpha_train 2) on your own model and data with wmrbench's training loop:
checkpoints every epoch, best.pt on a held-out part, resume, divergence stop. CPU, seconds."""

import torch
from sklearn.datasets import load_digits
from torch import nn

import wmrbench

# Your data: 8x8 digits as an (x, y) pair of tensors, images in [0, 1] (a torch Dataset works too).
digits = load_digits()
x = torch.tensor(digits.images[:400], dtype=torch.float32).div(16.0).unsqueeze(1)
y = torch.tensor(digits.target[:400])


class TinyNet(nn.Module):  # your model
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


torch.manual_seed(0)
model = TinyNet()
result = wmrbench.fit(model, (x, y), defense="trades", alpha_train=2.0, eps=0.1, step_size=0.025, steps=5,
                      epochs=2, batch_size=50, lr=0.05, val_size=100, device="cpu", show_progress=False)
# No run named: each call trains a fresh checkpoints/custom, custom-2, ... (resume=True continues the newest).
print(result)
print(f"last: {result.last}")
print(f"best: {result.best}")
for epoch in result.history:
    print(f"epoch {epoch['epoch']}: loss {epoch['loss']:.4f}, held-out A_rob {epoch['val']['A_rob']:.1f}%")
