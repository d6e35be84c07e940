"""Random starts of an attack: ``x + 0.001 * N(0, I)``, ``x + U(-eps, eps)`` or x itself.

Two sources of noise: a ``torch.Generator`` (reproducible for one call sequence; training uses
it), or a key (seed, example index, restart) hashed on the device, so that the start of an
example depends on nothing else: not on the batch it sits in, the batch size, the number of
processes or the position in an alpha stack. Evaluation relies on this for exact invariants
(``A_sa(0) = A_tr(0) = A_rob``; a stacked alpha sweep equals one call per alpha).

The keyed arithmetic is integer-exact and the same on CPU and CUDA; changing any constant here
changes every keyed start, hence every evaluation number.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wmrbench.config import Start, parse_enum

_MASK32 = 0xFFFFFFFF


def _mix32(h: Tensor) -> Tensor:
    # lowbias32 integer finalizer (Wellons); int64 arithmetic masked to 32 bits keeps it exact and
    # identical on CPU and CUDA (no reliance on signed overflow or arithmetic shifts).
    h = h & _MASK32
    h = ((h ^ (h >> 16)) * 0x7FEB352D) & _MASK32
    h = ((h ^ (h >> 15)) * 0x846CA68B) & _MASK32
    return h ^ (h >> 16)


def keyed_uniform(shape: torch.Size, index: Tensor, seed: int, stream: int) -> Tensor:
    """Uniform [0, 1) noise of ``shape`` whose row i depends only on (seed, index[i], stream)."""
    per_example = int(torch.Size(shape[1:]).numel())
    element = torch.arange(per_example, device=index.device, dtype=torch.int64)
    key = _mix32(_mix32(index.to(torch.int64) + _mix32(torch.tensor(seed * 1000003 + stream))))
    h = _mix32(key[:, None] * 0x9E3779B1 + element[None, :])
    h = _mix32(h ^ key[:, None])
    # 24 random bits -> a float32 in [0, 1) that is exactly representable.
    return ((h >> 8).to(torch.float32) * (1.0 / 16777216.0)).reshape(shape)


def keyed_normal(shape: torch.Size, index: Tensor, seed: int, stream: int) -> Tensor:
    """Standard normal noise keyed like :func:`keyed_uniform` (Box-Muller on two streams)."""
    u1 = keyed_uniform(shape, index, seed, 2 * stream + 1)
    u2 = keyed_uniform(shape, index, seed, 2 * stream + 2)
    radius = torch.sqrt(-2.0 * torch.log1p(-u1))  # 1 - u1 in (0, 1]: log is finite
    return radius * torch.cos(2.0 * torch.pi * u2)


def _start_noise(
    x: Tensor, start: Start, restart: int, generator: torch.Generator | None,
    index: Tensor | None, seed: int,
) -> Tensor:
    # Restart r uses keyed streams 2r (normal) and 2r + 1 (uniform): the two start kinds never
    # share a stream, and a further restart never repeats an earlier one.
    if index is not None:
        if start is Start.NORMAL:
            return keyed_normal(x.shape, index, seed, 2 * restart)
        return keyed_uniform(x.shape, index, seed, 2 * restart + 1) * 2.0 - 1.0
    if start is Start.NORMAL:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2.0 - 1.0


def start_point(
    x: Tensor, eps: float, start: Start | str, restart: int = 0,
    generator: torch.Generator | None = None, index: Tensor | None = None, seed: int = 0,
) -> Tensor:
    """The attack's starting point, clipped to [0, 1] (and inside the eps-ball by construction).

    Keyed on (``seed``, ``index``, ``restart``) when ``index`` (each example's global id) is
    given, else drawn from ``generator`` (or the global RNG).
    """
    start = parse_enum(Start, start, "start")
    if start is Start.ZERO or eps == 0:
        return x.clone()
    noise = _start_noise(x, start, restart, generator, index, seed).to(x.dtype)
    scale = 0.001 if start is Start.NORMAL else eps
    x_start = x + scale * noise
    # 0.001 * N(0, 1) can (rarely) leave a tiny eps-ball: project as every step does.
    return torch.minimum(torch.maximum(x_start, x - eps), x + eps).clamp_(0.0, 1.0)
