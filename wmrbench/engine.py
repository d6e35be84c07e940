"""THE attack engine: margin, importance weights and (weighted) PGD.

This is the only module that takes gradients with respect to inputs; training, ``attack`` and
``evaluate`` all call :func:`pgd`. Definitions follow DESIGN.md section 1:

* ``margin = p_y - max_{t != y} p_t`` with ``p = softmax(logits)``, in [-1, 1];
* ``s = exp(-alpha * margin)`` at the adversarial point, with the true label;
* weighted PGD ascends ``sum_i s_i * l_i`` with the weight left in the autograd graph, so alpha
  changes the direction of each signed step; ``alpha = None`` is plain PGD on ``sum_i l_i``.

Performance (DESIGN.md section 5): parameters are frozen during attacks, so the backward pass
computes input gradients only; no step reads a value back to the host; logits of reduced
precision (bf16 autocast) are upcast before the loss, float64 is kept. Two optional fast paths
run the same fixed-shape step: ``cuda_graph`` captures one PGD step in a CUDA graph and replays
it (on by default for CUDA inputs: identical kernels, one launch per step), ``compile_model``
runs the model through ``torch.compile``. The default CPU path is the plain eager loop.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.config import InnerLoss, Start

Alpha = float | Tensor | None


@dataclass
class AttackResult:
    x_adv: Tensor  # adversarial inputs, within eps of x and inside [0, 1]
    logits: Tensor  # logits of the model (eval mode) at x_adv: float32 (float64 for float64 models)
    margin: Tensor  # margin at x_adv with the true label, in the logits' dtype


def _upcast(logits: Tensor) -> Tensor:
    """float32 for bf16/fp16 logits (autocast); float32 and float64 are left as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """``p_y - max_{t != y} p_t``: positive when correct, negative when misclassified."""
    p = _upcast(logits).softmax(dim=1)
    p_y = p.gather(1, y[:, None]).squeeze(1)
    # A comparison, not F.one_hot: one_hot validates labels with a host sync on some devices,
    # which would also break CUDA graph capture.
    is_label = torch.arange(p.shape[1], device=y.device) == y[:, None]
    p_other = p.masked_fill(is_label, float("-inf")).amax(dim=1)
    return p_y - p_other


def importance_weights(logits: Tensor, y: Tensor, alpha: float | Tensor) -> Tensor:
    """``s = exp(-alpha * margin)``; differentiable in logits (detach at the call site if wanted)."""
    return torch.exp(-alpha * margin(logits, y))


def inner_loss(logits: Tensor, y: Tensor, loss: InnerLoss, natural_probs: Tensor | None) -> Tensor:
    """Per-example loss the attack ascends: CE, or TRADES' KL(p(x) || p(x')) summed over classes."""
    logits = _upcast(logits)
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


def autocast(
    device_type: str, autocast_dtype: torch.dtype | None, cache_enabled: bool = True
) -> contextlib.AbstractContextManager:
    """bf16 (or other) autocast when a dtype is given, else nothing.

    ``cache_enabled=False`` inside CUDA graphs: autocast's weight-cast cache must not hand a
    captured graph a cast made outside it (it would go stale when the weights change).
    """
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=autocast_dtype, cache_enabled=cache_enabled)


def _forward(model: nn.Module, x: Tensor, autocast_dtype: torch.dtype | None) -> Tensor:
    with autocast(x.device.type, autocast_dtype):
        return model(x)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Logits (float32; float64 for a float64 model) in eval mode at x, no gradients; the mode
    is restored."""
    was_training = model.training
    model.eval()
    try:
        return _upcast(_forward(model, x, autocast_dtype))
    finally:
        model.train(was_training)


Forward = Callable[[Tensor], Tensor]  # the model (eager or compiled) at x -> logits


def _step(
    forward: Forward, x_adv: Tensor, y: Tensor, lower: Tensor, upper: Tensor, step_size: float,
    loss: InnerLoss, natural_probs: Tensor | None, alpha: Alpha,
) -> Tensor:
    """One signed-gradient ascent step on ``sum_i s_i * l_i``, projected onto [lower, upper].

    Every path (eager, compiled, CUDA graph) runs exactly this function.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    logits = forward(x_adv)
    per_example = inner_loss(logits, y, loss, natural_probs)
    if alpha is not None:
        # The weight stays in the graph: its gradient is part of the step direction.
        per_example = importance_weights(logits, y, alpha) * per_example
    (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
    # +-step_size or 0 added exactly, then one clamp to the eps-ball intersected with [0, 1].
    return torch.clamp(x_adv.detach().add(grad.sign(), alpha=step_size), lower, upper)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# ---------------------------------------------------------------------------------------------
# CUDA graph fast path. One PGD step is captured once per (model weights, shapes, settings) and
# replayed for every further step and batch: the step's hundreds of kernels become one launch,
# which is what small CIFAR models at training batch sizes are bound by. The captured kernels
# are the eager step's own, reading the model's weights in place (optimizer steps update them in
# place), so a replay computes what the eager step would.
# ---------------------------------------------------------------------------------------------

_GRAPH_WARMUP_STEPS = 2  # eager steps on a side stream before capture (cuBLAS/cuDNN set-up)
_GRAPHS_PER_MODEL = 4  # least-recently used graphs beyond this are dropped (each holds memory)


@dataclass
class _StepGraph:
    graph: torch.cuda.CUDAGraph
    x_adv: Tensor  # static buffers: copy in, replay, read out
    y: Tensor
    lower: Tensor
    upper: Tensor
    alpha: Tensor | None
    natural_probs: Tensor | None


_graphs: weakref.WeakKeyDictionary[nn.Module, OrderedDict[tuple, _StepGraph | None]] = weakref.WeakKeyDictionary()


def _graph_key(
    model: nn.Module, x: Tensor, y: Tensor, step_size: float, loss: InnerLoss, alpha: Alpha,
    natural_probs: Tensor | None, amp: torch.dtype | None, compiled: bool,
) -> tuple:
    # Weights are read by address: a model moved or reloaded into new storage gets a new graph.
    storage = tuple(t.data_ptr() for t in (*model.parameters(), *model.buffers()))
    alpha_key = ("tensor", alpha.dtype) if isinstance(alpha, Tensor) else alpha
    probs_key = None if natural_probs is None else (natural_probs.shape, natural_probs.dtype)
    return (storage, x.shape, x.stride(), x.dtype, x.device, y.dtype, step_size, loss, alpha_key,
            probs_key, amp, compiled)


def _capture(
    forward: Forward, x_adv: Tensor, y: Tensor, lower: Tensor, upper: Tensor, step_size: float,
    loss: InnerLoss, natural_probs: Tensor | None, alpha: Alpha,
) -> _StepGraph:
    static = _StepGraph(
        graph=torch.cuda.CUDAGraph(), x_adv=x_adv.clone(), y=y.clone(), lower=lower.clone(),
        upper=upper.clone(), alpha=alpha.clone() if isinstance(alpha, Tensor) else None,
        natural_probs=None if natural_probs is None else natural_probs.clone(),
    )
    step_alpha = static.alpha if isinstance(alpha, Tensor) else alpha
    with torch.cuda.graph(static.graph):
        out = _step(forward, static.x_adv, static.y, static.lower, static.upper, step_size, loss,
                    static.natural_probs, step_alpha)
        static.x_adv.copy_(out)
    return static


def _graph_steps(
    model: nn.Module, forward: Forward, x_adv: Tensor, steps: int, y: Tensor, lower: Tensor,
    upper: Tensor, step_size: float, loss: InnerLoss, natural_probs: Tensor | None, alpha: Alpha,
    amp: torch.dtype | None, compiled: bool,
) -> Tensor | None:
    """``steps`` PGD steps through a cached CUDA graph; None when the model cannot be captured
    (the caller then runs the eager loop, from the same x_adv)."""
    per_model = _graphs.setdefault(model, OrderedDict())
    key = _graph_key(model, x_adv, y, step_size, loss, alpha, natural_probs, amp, compiled)
    if key in per_model and per_model[key] is None:
        return None  # capture failed before for this model and shape: eager
    args = (y, lower, upper, step_size, loss, natural_probs, alpha)
    entry = per_model.get(key)
    done = 0
    if entry is None:
        if steps <= _GRAPH_WARMUP_STEPS:
            return None  # too few steps to be worth a capture
        # Warm-up steps are real steps of this attack, run eagerly on a side stream.
        side = torch.cuda.Stream(x_adv.device)
        side.wait_stream(torch.cuda.current_stream(x_adv.device))
        with torch.cuda.stream(side):
            for _ in range(_GRAPH_WARMUP_STEPS):
                x_adv = _step(forward, x_adv, *args)
        torch.cuda.current_stream(x_adv.device).wait_stream(side)
        done = _GRAPH_WARMUP_STEPS
        try:
            entry = _capture(forward, x_adv, *args)
        except RuntimeError:
            # Host syncs or data-dependent control flow in the model: remember, go eager.
            torch.cuda.synchronize(x_adv.device)
            per_model[key] = None
            return _eager_steps(forward, x_adv, steps - done, *args)
        per_model[key] = entry
        while len(per_model) > _GRAPHS_PER_MODEL:
            per_model.popitem(last=False)
    else:
        per_model.move_to_end(key)
        entry.y.copy_(y)
        entry.lower.copy_(lower)
        entry.upper.copy_(upper)
        if entry.alpha is not None:
            entry.alpha.copy_(alpha)
        if entry.natural_probs is not None:
            entry.natural_probs.copy_(natural_probs)
    entry.x_adv.copy_(x_adv)
    for _ in range(steps - done):
        entry.graph.replay()
    # A copy: the static buffer is overwritten by the next replay.
    return entry.x_adv.clone()


def _eager_steps(
    forward: Forward, x_adv: Tensor, steps: int, y: Tensor, lower: Tensor, upper: Tensor,
    step_size: float, loss: InnerLoss, natural_probs: Tensor | None, alpha: Alpha,
) -> Tensor:
    for _ in range(steps):
        x_adv = _step(forward, x_adv, y, lower, upper, step_size, loss, natural_probs, alpha)
    return x_adv


def _model_forward(
    model: nn.Module, device_type: str, amp: torch.dtype | None, compile_model: bool, in_graph: bool
) -> Forward:
    net = torch.compile(model, dynamic=False) if compile_model else model

    def forward(x: Tensor) -> Tensor:
        with autocast(device_type, amp, cache_enabled=not in_graph):
            return net(x)

    return forward


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
    cuda_graph: bool | None = None,
    compile_model: bool = False,
) -> AttackResult:
    """(Weighted) L-infinity PGD with signed steps, projected onto the eps-ball and [0, 1].

    ``alpha``: None for plain PGD; a float, or a per-example tensor of shape (N,) so that one
    call runs several alphas side by side (stack copies of x). ``loss``: CE, or KL for the TRADES
    attack (then ``natural_logits`` are the model's logits at x). Starts come from ``index`` and
    ``seed`` when ``index`` (each example's global id) is given, else from ``generator`` (or the
    global RNG). With restarts, each example keeps the restart whose final margin is lowest.
    The model runs in eval mode with gradients for the input only; its mode is restored after.

    Fast paths (same steps, same results up to floating-point nondeterminism of the device):
    ``cuda_graph`` (None = on for CUDA inputs) replays one captured step; ``compile_model`` runs
    the model through ``torch.compile`` (worth it for long runs of one shape; off by default).
    """
    if isinstance(alpha, Tensor):
        alpha = alpha.to(device=x.device, dtype=torch.float32)
    natural_probs = None
    if loss is InnerLoss.KL:
        if natural_logits is None:
            raise ValueError("loss=KL needs natural_logits")
        natural_probs = _upcast(natural_logits.detach()).softmax(dim=1)
    x = x.detach()
    fmt = _memory_format(x)
    lower, upper = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    # Not under a caller's autocast: its weight-cast cache would leak stale casts into a graph.
    use_graph = (x.is_cuda if cuda_graph is None else (cuda_graph and x.is_cuda)) and not (
        x.is_cuda and torch.is_autocast_enabled("cuda"))
    forward = _model_forward(model, x.device.type, autocast_dtype, compile_model, in_graph=use_graph)

    best: AttackResult | None = None
    with attack_mode(model):
        for restart in range(restarts):
            # Every step keeps x's memory format, so the eager and captured steps see one layout.
            x_adv = start_point(x, eps, start, restart, generator, index, seed).contiguous(memory_format=fmt)
            args = (y, lower, upper, step_size, loss, natural_probs, alpha)
            stepped = None
            if use_graph and steps > 0:
                stepped = _graph_steps(model, forward, x_adv, steps, *args, autocast_dtype, compile_model)
            x_adv = stepped if stepped is not None else _eager_steps(forward, x_adv, steps, *args)
            with torch.no_grad():
                logits = _upcast(_forward(model, x_adv, autocast_dtype))
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
