"""Batched data augmentation on the training device: random crop with padding + flip.

This is torchvision's ``RandomCrop(size, padding=4)`` followed by ``RandomHorizontalFlip()``,
done for a whole batch at once with one gather on the batch's device, so the GPU never waits
for a CPU data loader. The draws come from a ``torch.Generator`` that lives on the same device
and is checkpointed with the run, so a resumed run sees the same crops and flips.

Per image, as torchvision does it: pad by ``padding`` pixels on every side (zeros, as TRADES'
code does, or the mirror image without repeating the edge, ``padding_mode="reflect"``, as the
authors' PGD-AT code does), pick the top-left
corner ``(top, left)`` uniformly in ``[0, 2 * padding]^2`` (every position where a crop of the
original size fits), crop, then mirror left-right with probability 1/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PADDING = 4  # CIFAR-10 (crop 32) and Tiny ImageNet (crop 64) alike, as in the reference code


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


def _reflect(index: Tensor, size: int) -> Tensor:
    """Positions of a reflect-padded axis (-p .. size-1+p, p < size) in the unpadded one: the
    mirror image without repeating the edge pixel (torch's and numpy's "reflect")."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def apply_crop_flip(x: Tensor, draws: CropFlip, padding: int, padding_mode: str = "zeros") -> Tensor:
    """Crop every image of ``x`` (N, C, H, W) at its corner in the padded image, then flip.

    Output pixel (r, c) of image n is padded pixel (top_n + r, left_n + c), with c mirrored to
    W - 1 - c when the image is flipped: one gather, whatever the dtype (uint8 or float).
    """
    n, channels, height, width = x.shape
    rows = draws.top.to(x.device)[:, None] + torch.arange(height, device=x.device)  # (N, H)
    cols = torch.arange(width, device=x.device).expand(n, width)
    cols = torch.where(draws.flip.to(x.device)[:, None], width - 1 - cols, cols)
    cols = draws.left.to(x.device)[:, None] + cols  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(channels, device=x.device)[None, :, None, None]
    if padding_mode == "reflect":
        # No padded copy: each padded position maps straight to its mirrored source pixel.
        rows, cols = _reflect(rows - padding, height), _reflect(cols - padding, width)
        return x[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]
    if padding_mode != "zeros":
        raise ValueError(f"padding_mode must be zeros or reflect; got {padding_mode!r}")
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # zeros, like fill=0
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(
    x: Tensor, generator: torch.Generator, padding: int = PADDING, padding_mode: str = "zeros"
) -> Tensor:
    """Random crop (``padding`` pixels of ``padding_mode``, same output size) and horizontal flip."""
    if not 0 <= padding < min(x.shape[-2:]):
        raise ValueError(f"padding must be in [0, image size); got {padding}")
    return apply_crop_flip(x, draw_crop_flip(x.shape[0], padding, generator), padding, padding_mode)
