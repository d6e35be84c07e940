"""THE attack engine: margin, importance weights and (weighted) PGD.

This is the only module that takes gradients with respect to inputs; training, ``attack`` and
``evaluate`` all call :func:`pgd`. Definitions follow DESIGN.md section 1:

* ``margin = p_y - max_{t != y} p_t`` with ``p = softmax(logits)``, in [-1, 1];
* ``s = exp(-alpha * margin)`` at the adversarial point, with the true label;
* weighted PGD ascends ``sum_i s_i * l_i`` with the weight left in the autograd graph, so alpha
  changes the direction of each signed step; ``alpha = None`` is plain PGD on ``sum_i l_i``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.config import InnerLoss, Start

Alpha = float | Tensor | None


@dataclass
class AttackResult:
    x_adv: Tensor  # adversarial inputs, within eps of x and inside [0, 1]
    logits: Tensor  # float32 logits of the model (eval mode) at x_adv
    margin: Tensor  # margin at x_adv with the true label, float32


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """``p_y - max_{t != y} p_t``: positive when correct, negative when misclassified."""
    p = logits.float().softmax(dim=1)
    p_y = p.gather(1, y[:, None]).squeeze(1)
    is_label = F.one_hot(y, num_classes=p.shape[1]).bool()
    p_other = p.masked_fill(is_label, float("-inf")).amax(dim=1)
    return p_y - p_other


def importance_weights(logits: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
    """``s = exp(-alpha * margin)``; differentiable in logits (detach at the call site if wanted)."""
    return torch.exp(-alpha * margin(logits, y))


def inner_loss(logits: Tensor, y: Tensor, loss: InnerLoss, natural_probs: Tensor | None) -> Tensor:
    """Per-example loss the attack ascends: CE, or TRADES' KL(p(x) || p(x')) summed over classes."""
    logits = logits.float()
    if loss is InnerLoss.CE:
        return F.cross_entropy(logits, y, reduction="none")
    if natural_probs is None:
        raise ValueError("the KL inner loss needs natural_logits (the model's logits at x)")
    return F.kl_div(F.log_softmax(logits, dim=1), natural_probs, reduction="none").sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Random starts. Two sources: a torch.Generator (reproducible for one call sequence, used in
# training), or a key (seed, example index, restart) hashed on the device, so that the start of
# an example depends on nothing else: not on the batch it sits in, the batch size, the number of
# processes or the position in an alpha stack (evaluation relies on this for exact invariants).
# ---------------------------------------------------------------------------------------------

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
    if index is not None:
        if start is Start.NORMAL:
            return keyed_normal(x.shape, index, seed, 2 * restart)
        return keyed_uniform(x.shape, index, seed, 2 * restart + 1) * 2.0 - 1.0
    if start is Start.NORMAL:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2.0 - 1.0


def start_point(
    x: Tensor, eps: float, start: Start, restart: int = 0,
    generator: torch.Generator | None = None, index: Tensor | None = None, seed: int = 0,
) -> Tensor:
    """The attack's starting point, clipped to [0, 1] (and inside the eps-ball by construction)."""
    if start is Start.ZERO or eps == 0:
        return x.clone()
    noise = _start_noise(x, start, restart, generator, index, seed).to(x.dtype)
    scale = 0.001 if start is Start.NORMAL else eps
    x_start = x + scale * noise
    # 0.001 * N(0, 1) can (rarely) leave a tiny eps-ball: project as every step does.
    return torch.minimum(torch.maximum(x_start, x - eps), x + eps).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm frozen, dropout off) and no parameter gradients, restored after.

    Freezing the parameters means autograd neither computes nor stores anything for weight
    gradients: the backward pass only propagates to the input.
    """
    was_training = model.training
    frozen = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


def autocast(device_type: str, autocast_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16 (or other) autocast when a dtype is given, else nothing."""
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=autocast_dtype)


def _forward(model: nn.Module, x: Tensor, autocast_dtype: torch.dtype | None) -> Tensor:
    with autocast(x.device.type, autocast_dtype):
        return model(x)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Float32 logits of the model in eval mode at x (no gradients); the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return _forward(model, x, autocast_dtype).float()
    finally:
        model.train(was_training)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    alpha: Alpha = None,
    loss: InnerLoss = InnerLoss.CE,
    start: Start = Start.UNIFORM,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    seed: int = 0,
    natural_logits: Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> AttackResult:
    """(Weighted) L-infinity PGD with signed steps, projected onto the eps-ball and [0, 1].

    ``alpha``: None for plain PGD; a float, or a per-example tensor of shape (N,) so that one
    call runs several alphas side by side (stack copies of x). ``loss``: CE, or KL for the TRADES
    attack (then ``natural_logits`` are the model's logits at x). Starts come from ``index`` and
    ``seed`` when ``index`` (each example's global id) is given, else from ``generator`` (or the
    global RNG). With restarts, each example keeps the restart whose final margin is lowest.
    The model runs in eval mode with gradients for the input only; its mode is restored after.
    """
    if isinstance(alpha, Tensor):
        alpha = alpha.to(device=x.device, dtype=torch.float32)
    natural_probs = None
    if loss is InnerLoss.KL:
        if natural_logits is None:
            raise ValueError("loss=KL needs natural_logits")
        natural_probs = natural_logits.detach().float().softmax(dim=1)
    x = x.detach()
    lower, upper = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)

    best: AttackResult | None = None
    with attack_mode(model):
        for restart in range(restarts):
            x_adv = start_point(x, eps, start, restart, generator, index, seed)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                logits = _forward(model, x_adv, autocast_dtype)
                per_example = inner_loss(logits, y, loss, natural_probs)
                if alpha is not None:
                    # The weight stays in the graph: its gradient is part of the step direction.
                    per_example = importance_weights(logits, y, alpha) * per_example
                (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
                x_adv = torch.minimum(torch.maximum(x_adv.detach() + step_size * grad.sign(), lower), upper)
            with torch.no_grad():
                logits = _forward(model, x_adv, autocast_dtype).float()
            result = AttackResult(x_adv.detach(), logits, margin(logits, y))
            best = result if best is None else _keep_lowest_margin(best, result)
    assert best is not None
    return best


def _keep_lowest_margin(best: AttackResult, new: AttackResult) -> AttackResult:
    better = new.margin < best.margin  # a device tensor: no host sync
    return AttackResult(
        x_adv=torch.where(better.view(-1, *[1] * (new.x_adv.dim() - 1)), new.x_adv, best.x_adv),
        logits=torch.where(better[:, None], new.logits, best.logits),
        margin=torch.where(better, new.margin, best.margin),
    )
