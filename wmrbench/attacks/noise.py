"""Random starts of an attack, for the L-infinity and the L2 ball.

* ``normal``: ``x + 0.001 * N(0, I)`` (TRADES, Algorithm 1), projected onto the ball;
* ``uniform``: L-infinity ``x + U(-eps, eps)``; L2 a point uniform in the ball (a normal
  direction and a radius ``eps * u^(1/d)``, d the number of coordinates per example);
* ``zero``: x itself.

Every start is clipped to [0, 1]. Chained restarts add the noise to the previous restart's end
point (``origin``) instead of x and project onto the ball around x.

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

from wmrbench.attacks.norms import TINY, l2_norm, project_l2
from wmrbench.core.attack_config import Norm, Start
from wmrbench.core.checks import parse_enum

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


def _l2_ball_noise(
    x: Tensor, restart: int, generator: torch.Generator | None, index: Tensor | None, seed: int,
) -> Tensor:
    """A point uniform in the unit L2 ball per example: a normal direction, radius ``u^(1/d)``."""
    if index is not None:
        direction = keyed_normal(x.shape, index, seed, 2 * restart)
        # keyed_normal(stream 2r) draws on keyed_uniform streams 4r + 1 and 4r + 2, the
        # L-infinity uniform start on odd streams: stream 4(r + 1) feeds no other noise, so the
        # radius is independent of the direction and of every other restart. Not stream 0: the
        # hash maps (seed 0, index 0, stream 0) to exactly 0, a zero radius.
        u = keyed_uniform(torch.Size([x.shape[0]]), index, seed, 4 * (restart + 1))
    else:
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    radius = u.pow(1.0 / x[0].numel()).view(-1, *[1] * (x.dim() - 1))
    return direction * (radius / l2_norm(direction).clamp_min(TINY))


def start_point(
    x: Tensor, eps: float, start: Start | str, restart: int = 0,
    generator: torch.Generator | None = None, index: Tensor | None = None, seed: int = 0,
    *, norm: Norm | str = Norm.LINF, origin: Tensor | None = None,
) -> Tensor:
    """The attack's starting point in the ``norm`` ball of radius eps around x, within [0, 1].

    Keyed on (``seed``, ``index``, ``restart``) when ``index`` (each example's global id) is
    given, else drawn from ``generator`` (or the global RNG). ``origin`` (a chained restart: the
    previous restart's end point) is where the noise is added; the default is x.
    """
    start = parse_enum(Start, start, "start")
    norm = parse_enum(Norm, norm, "norm")
    base = x if origin is None else origin
    if eps == 0:
        return x.clone()  # the ball is the point x
    if start is Start.ZERO:
        return base.clone()
    if norm is Norm.L2:
        if start is Start.NORMAL:
            noise = 0.001 * _start_noise(x, start, restart, generator, index, seed).to(x.dtype)
        else:
            noise = eps * _l2_ball_noise(x, restart, generator, index, seed).to(x.dtype)
        return project_l2(base + noise, x, eps).clamp_(0.0, 1.0)
    noise = _start_noise(x, start, restart, generator, index, seed).to(x.dtype)
    scale = 0.001 if start is Start.NORMAL else eps
    x_start = base + scale * noise
    # 0.001 * N(0, 1) can (rarely) leave a tiny eps-ball, and a chained start leaves it often:
    # project as every step does.
    return torch.minimum(torch.maximum(x_start, x - eps), x + eps).clamp_(0.0, 1.0)
