"""(Weighted) L-infinity PGD: Algorithm 1 of Zeng et al. (AAAI 2021) and Madry et al.'s PGD.

Weighted PGD ascends ``sum_i s_i * l_i`` with ``s_i = exp(-alpha * margin_i)`` left in the
autograd graph, so alpha changes the direction of each signed step (a detached weight would
leave signed PGD blind to it); ``alpha = None`` is plain PGD on ``sum_i l_i``, and ``alpha = 0``
reproduces it bit for bit. One step (:func:`_step`) is the whole attack; :mod:`.stepper` repeats
it, eagerly or through a CUDA graph, and :mod:`.noise` gives the starts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmrbench.attacks.noise import start_point
from wmrbench.attacks.objective import (
    Alpha, AttackResult, attack_mode, choose_among, importance_weights, inner_loss, margin, predict,
    upcast,
)
from wmrbench.attacks.registry import register_attack
from wmrbench.attacks.stepper import (
    Forward, StepInputs, make_stepper, model_forward, use_cuda_graph,
)
from wmrbench.config import AttackConfig, InnerLoss, Precision, Start, parse_enum


def _step(forward: Forward, x_adv: Tensor, inputs: StepInputs) -> Tensor:
    """One signed-gradient ascent step on ``sum_i s_i * l_i``, projected onto [lower, upper].

    Every path (eager, compiled, CUDA graph) runs exactly this function.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    logits = forward(x_adv)
    per_example = inner_loss(logits, inputs.y, inputs.loss, inputs.natural_probs)
    if inputs.alpha is not None:
        # The weight stays in the graph: its gradient is part of the step direction.
        per_example = importance_weights(logits, inputs.y, inputs.alpha) * per_example
    (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
    # +-step_size or 0 added exactly, then one clamp to the eps-ball intersected with [0, 1].
    return torch.clamp(x_adv.detach().add(grad.sign(), alpha=inputs.step_size), inputs.lower, inputs.upper)


def _step_inputs(
    x: Tensor, y: Tensor, attack: AttackConfig, alpha: Alpha, loss: InnerLoss,
    natural_logits: Tensor | None,
) -> StepInputs:
    if isinstance(alpha, Tensor):
        alpha = alpha.to(device=x.device, dtype=torch.float32)
    natural_probs = None
    if loss is InnerLoss.KL:
        if natural_logits is None:
            raise ValueError("loss=KL needs natural_logits")
        natural_probs = upcast(natural_logits.detach()).softmax(dim=1)
    lower, upper = (x - attack.eps).clamp_(min=0.0), (x + attack.eps).clamp_(max=1.0)
    return StepInputs(y, lower, upper, attack.step_size, loss, natural_probs, alpha)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@register_attack("pgd", "(weighted) L-infinity PGD with signed steps, CE or TRADES' KL loss")
def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: AttackConfig,
    *,
    alpha: Alpha = None,
    loss: InnerLoss | str = InnerLoss.CE,
    natural_logits: Tensor | None = None,
    generator: torch.Generator | None = None,
    index: Tensor | None = None,
    seed: int = 0,
    precision: Precision | str = Precision.FP32,
    cuda_graph: bool | None = None,
    compile_model: bool = False,
) -> AttackResult:
    """(Weighted) L-infinity PGD with signed steps, projected onto the eps-ball and [0, 1].

    ``attack``: eps, step_size, steps, restarts and start. ``alpha``: None for plain PGD; a
    float, or a per-example tensor of shape (N,) so that one call runs several alphas side by
    side (stack copies of x). ``loss``: ``"ce"``, or ``"kl"`` for the TRADES attack (then
    ``natural_logits`` are the model's logits at x). Starts come from ``index`` and ``seed``
    when ``index`` (each example's global id) is given, else from ``generator`` (or the global
    RNG). With restarts, each restart starts afresh from x and :func:`choose_among` picks per
    example. ``precision``: ``"fp32"``, or ``"bf16"`` for bf16 autocast (logits are upcast to
    float32 before the loss). The model runs in eval mode with gradients for the input only; its
    mode is restored after. Enum options also take their string values; anything else raises
    WmrbenchError.

    Fast paths (same steps, same results up to floating-point nondeterminism of the device):
    ``cuda_graph`` (None = on for CUDA inputs) replays one captured step; ``compile_model`` runs
    the model through ``torch.compile`` (worth it for long runs of one shape; off by default).
    """
    loss = parse_enum(InnerLoss, loss, "loss")
    precision = parse_enum(Precision, precision, "precision")
    start = parse_enum(Start, attack.start, "start")
    x = x.detach()
    inputs = _step_inputs(x, y, attack, alpha, loss, natural_logits)
    graph = use_cuda_graph(x, cuda_graph)
    forward = model_forward(model, x.device.type, precision, compile_model, in_graph=graph)
    stepper = make_stepper(_step, forward, inputs, model=model, graph=graph, precision=precision,
                           compiled=compile_model)
    fmt = _memory_format(x)
    best: AttackResult | None = None
    with attack_mode(model):
        for restart in range(attack.restarts):
            # Every step keeps x's memory format, so the eager and captured steps see one layout.
            x_start = start_point(x, attack.eps, start, restart, generator, index, seed)
            x_adv = stepper.run(x_start.contiguous(memory_format=fmt), attack.steps)
            logits = predict(model, x_adv, precision)
            result = AttackResult(x_adv.detach(), logits, margin(logits, y))
            best = result if best is None else choose_among(best, result)
    assert best is not None  # AttackConfig guarantees restarts >= 1
    return best
