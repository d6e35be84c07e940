"""L2 geometry shared by the starts (:mod:`.noise`) and the steps (:mod:`.pgd`), per example.

The L-infinity ball needs nothing here: it is a box, so a clamp to ``max(x - eps, 0)`` and
``min(x + eps, 1)`` projects onto it and the unit box at once. The L2 ball is projected by
scaling the perturbation down, then clamped to [0, 1]; clamping moves no coordinate away from
x (x itself is in [0, 1]), so the point stays in the ball.

Every function is elementwise or a per-example reduction: no host syncs, so they run inside a
captured CUDA graph, and an example's result does not depend on the rest of its batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Below this norm a vector counts as zero: dividing by it instead of by 0 turns a zero gradient
# into a zero step (no NaN), and leaves every norm above it (every real gradient) untouched.
TINY = 1e-12


def l2_norm(t: Tensor) -> Tensor:
    """The L2 norm of each example (row of the first dimension), shaped to broadcast against t."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1).view(-1, *[1] * (t.dim() - 1))


def l2_direction(grad: Tensor) -> Tensor:
    """``grad / ||grad||`` per example; a zero gradient gives a zero direction."""
    return grad / l2_norm(grad).clamp_min(TINY)


def project_l2(point: Tensor, x: Tensor, eps: float) -> Tensor:
    """``point`` moved onto the L2 ball of radius eps around x (per example; not clipped to [0, 1]).

    A point already inside is returned bit for bit (``x + (point - x)`` would round it).
    """
    delta = point - x
    norm = l2_norm(delta)
    scaled = x + delta * (eps / norm.clamp_min(TINY))
    return torch.where(norm > eps, scaled, point)
