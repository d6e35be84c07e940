"""Batched data augmentation on the training device: random crop with zero padding + flip.

This is torchvision's ``RandomCrop(size, padding=4)`` followed by ``RandomHorizontalFlip()``,
done for a whole batch at once with one gather on the batch's device, so the GPU never waits
for a CPU data loader. The draws come from a ``torch.Generator`` that lives on the same device
and is checkpointed with the run, so a resumed run sees the same crops and flips.

Per image, as torchvision does it: pad by ``padding`` zeros on every side, pick the top-left
corner ``(top, left)`` uniformly in ``[0, 2 * padding]^2`` (every position where a crop of the
original size fits), crop, then mirror left-right with probability 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PADDING = 4  # CIFAR-10 (crop 32) and Tiny ImageNet (crop 64) alike: DESIGN.md section 2


@dataclass(frozen=True)
class CropFlip:
    """One batch's draws: crop corners in the padded image and which images are mirrored."""

    top: Tensor  # (N,) int64 in [0, 2 * padding]
    left: Tensor  # (N,) int64 in [0, 2 * padding]
    flip: Tensor  # (N,) bool


def draw_crop_flip(n: int, padding: int, generator: torch.Generator) -> CropFlip:
    """Draw crop corners and flips for n images on the generator's device (no host sync)."""
    device = generator.device
    corners = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5  # RandomHorizontalFlip(p=0.5)
    return CropFlip(top=corners[0], left=corners[1], flip=flip)


def apply_crop_flip(x: Tensor, draws: CropFlip, padding: int) -> Tensor:
    """Crop every image of ``x`` (N, C, H, W) at its corner in the zero-padded image, then flip.

    Output pixel (r, c) of image n is padded pixel (top_n + r, left_n + c), with c mirrored to
    W - 1 - c when the image is flipped: one gather, whatever the dtype (uint8 or float).
    """
    n, channels, height, width = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # zeros, like fill=0
    rows = draws.top.to(x.device)[:, None] + torch.arange(height, device=x.device)  # (N, H)
    cols = torch.arange(width, device=x.device).expand(n, width)
    cols = torch.where(draws.flip.to(x.device)[:, None], width - 1 - cols, cols)
    cols = draws.left.to(x.device)[:, None] + cols  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = PADDING) -> Tensor:
    """Random crop (zero padding ``padding``, same output size) and horizontal flip of a batch."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0; got {padding}")
    return apply_crop_flip(x, draw_crop_flip(x.shape[0], padding, generator), padding)
