"""(Weighted) PGD in the L-infinity or L2 ball: Algorithm 1 of Zeng et al. (AAAI 2021) and
Madry et al.'s PGD.

Weighted PGD ascends ``sum_i s_i * l_i`` with ``s_i = exp(-alpha * margin_i)`` left in the
autograd graph, so alpha changes the direction of each step (a detached weight would leave
signed PGD blind to it); ``alpha = None`` is plain PGD on ``sum_i l_i``, and ``alpha = 0``
reproduces it bit for bit. L-infinity steps by the gradient's sign, L2 along the gradient
normalized per example; both project onto their ball and [0, 1]. One step (:func:`_step`) is
the whole attack; :mod:`.stepper` repeats it, eagerly or through a CUDA graph, :mod:`.noise`
gives the starts, and :func:`.objective.choose_among` picks among restarts, fresh (each from x)
or chained (each from the previous end point).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wmrbench.attacks.noise import start_point
from wmrbench.attacks.norms import l2_direction, project_l2
from wmrbench.attacks.objective import (
    Alpha, AttackResult, attack_mode, choose_among, choose_max_ce, inner_loss, margin, predict, step_weights,
    upcast,
)
from wmrbench.attacks.registry import register_attack
from wmrbench.attacks.stepper import (
    Forward, Stepper, StepFn, StepInputs, make_stepper, model_forward, use_cuda_graph,
)
from wmrbench.core.attack_config import AttackConfig, InnerLoss, Norm, Precision, RestartFrom, RestartRule, Start
from wmrbench.core.checks import parse_enum


def _step(forward: Forward, x_adv: Tensor, inputs: StepInputs) -> Tensor:
    """One ascent step on ``sum_i s_i * l_i``, projected onto the ball and [0, 1].

    Every path (eager, compiled, CUDA graph) runs exactly this function.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    logits = forward(x_adv)
    per_example = inner_loss(logits, inputs.y, inputs.loss, inputs.natural_probs)
    if inputs.survived is not None:  # GAIRAT's kappa, counted before the step as its authors do
        inputs.survived += logits.detach().argmax(dim=1) == inputs.y
    return ascend(x_adv, logits, per_example, inputs)


def ascend(x_adv: Tensor, logits: Tensor, per_example: Tensor, inputs: StepInputs) -> Tensor:
    """The rest of a step once the per-example loss ``l_i`` at ``x_adv`` is known: weight it by
    ``s_i`` (in the graph, from these logits), take the input gradient, step and project.

    Every PGD objective (CE, KL, :mod:`.lsa`'s scaled CE, :mod:`.cw`'s margin) ends here, so the
    weight sits in the same place for all of them and ``alpha = 0`` is plain PGD bit for bit.
    """
    if inputs.alpha is not None:
        # The weight stays in the graph: its gradient is part of the step direction. The step
        # uses only each example's direction, so the overflow-free form serves at any alpha.
        per_example = step_weights(logits, inputs.y, inputs.alpha) * per_example
    (grad,) = torch.autograd.grad(per_example.sum(), x_adv)
    if inputs.norm is Norm.L2:
        # A step of length step_size along the gradient (none for a zero gradient), scaled back
        # into the ball, then clipped to [0, 1] (which moves no coordinate away from x).
        x_next = x_adv.detach() + inputs.step_size * l2_direction(grad)
        return project_l2(x_next, inputs.center, inputs.eps).clamp_(0.0, 1.0)
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
    if attack.norm is Norm.L2:
        return StepInputs(y, None, None, attack.step_size, loss, natural_probs, alpha,
                          norm=Norm.L2, center=x, eps=attack.eps)
    lower, upper = (x - attack.eps).clamp_(min=0.0), (x + attack.eps).clamp_(max=1.0)
    return StepInputs(y, lower, upper, attack.step_size, loss, natural_probs, alpha)


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _restarts(
    model: nn.Module, stepper: Stepper, x: Tensor, y: Tensor, attack: AttackConfig,
    generator: torch.Generator | None, index: Tensor | None, seed: int, precision: Precision,
    inputs: StepInputs | None = None,
) -> AttackResult:
    """Run every restart from its start and keep, per example, the pick of ``attack.restart_rule``:
    :func:`choose_among` (weighted) or :func:`choose_max_ce` (max-ce, which also carries the
    weighted rule's pick among the same restarts as ``weighted_pick``).
    When ``inputs.survived`` counts (GAIRAT's kappa), the kept restart's count comes along."""
    start = parse_enum(Start, attack.start, "start")
    chained = attack.restart_from is RestartFrom.PREVIOUS
    max_ce = attack.restart_rule is RestartRule.MAX_CE
    weighted: AttackResult | None = None  # under max-ce: the weighted rule's pick, kept alongside
    fmt = _memory_format(x)
    best: AttackResult | None = None
    x_adv: Tensor | None = None
    counting = inputs is not None and inputs.survived is not None
    survived: list[Tensor] = []
    for restart in range(attack.restarts):
        if inputs is not None and inputs.survived is not None:  # a fresh count per restart
            inputs.survived = torch.zeros(y.shape, dtype=torch.int64, device=y.device)
            survived.append(inputs.survived)
        # Chained: the noise goes on the previous end point (the first restart has none: x).
        origin = x_adv if chained else None
        x_start = start_point(x, attack.eps, start, restart, generator, index, seed,
                              norm=attack.norm, origin=origin)
        # Every step keeps x's memory format, so the eager and captured steps see one layout.
        x_adv = stepper.run(x_start.contiguous(memory_format=fmt), attack.steps).detach()
        logits = predict(model, x_adv, precision)
        winner = torch.full(y.shape, restart, dtype=torch.int64, device=y.device)
        result = AttackResult(x_adv, logits, margin(logits, y), winner)
        # The chain above continues from the last end point whatever is kept, so both rules
        # choose among the very same candidates.
        if max_ce:
            weighted = result if weighted is None else choose_among(weighted, result, y)
            best = result if best is None else choose_max_ce(best, result, y)
        else:
            best = result if best is None else choose_among(best, result, y)
    assert best is not None  # AttackConfig guarantees restarts >= 1
    if max_ce:
        best.weighted_pick = weighted
    if counting:
        best.survived = torch.stack(survived).gather(0, best.restart[None]).squeeze(0)
    return best


@register_attack("pgd", "(weighted) PGD in the L-infinity or L2 ball, CE or TRADES' KL loss")
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
    train_mode: bool = False,
    count_survived: bool = False,
) -> AttackResult:
    """(Weighted) PGD in the ``attack.norm`` ball of radius eps around x, intersected with [0, 1].

    ``attack``: eps, step_size, steps, restarts, start, norm and restart_from. L-infinity takes
    signed steps and clamps; L2 steps along the gradient divided by its L2 norm per example,
    then scales the perturbation back into the ball and clips to [0, 1]. ``alpha``: None for
    plain PGD; a float, or a per-example tensor of shape (N,) so that one call runs several
    alphas side by side (stack copies of x). ``loss``: ``"ce"``, or ``"kl"`` for the TRADES
    attack (then ``natural_logits`` are the model's logits at x). Starts come from ``index`` and
    ``seed`` when ``index`` (each example's global id) is given, else from ``generator`` (or the
    global RNG). ``precision``: ``"fp32"``, or ``"bf16"`` for bf16 autocast (logits are upcast to
    float32 before the loss). The model runs in eval mode with gradients for the input only; its
    mode is restored after. Enum options also take their string values; anything else raises
    WmrbenchError.

    Restarts: ``restart_from="start"`` (the default) starts every restart afresh from x plus
    that restart's start noise, so the restarts are independent tries and the first R of R + 1
    are those of an R-restart call. ``restart_from="previous"`` chains them, as the authors'
    evaluation does: restart r > 0 starts from restart r - 1's end point plus restart r's fresh
    start noise, projected onto the ball around x and [0, 1], so later restarts keep climbing
    from where the last one stopped. Either way every restart's end point is a candidate and
    ``attack.restart_rule`` chooses, per example: ``"weighted"`` (the default) keeps a
    misclassified one with the lowest margin, else the one with the highest margin
    (:func:`choose_among`); ``"max-ce"`` keeps the highest cross-entropy, ties to the later
    restart, as the authors' evaluation (:func:`choose_max_ce`), and ``result.weighted_pick``
    holds the weighted rule's choice among the same restarts. ``result.restart`` says which
    restart was kept (0-based).

    Fast paths (same steps, same results up to floating-point nondeterminism of the device):
    ``cuda_graph`` (None = on for CUDA inputs) replays one captured step; ``compile_model`` runs
    the model through ``torch.compile`` (worth it for long runs of one shape; off by default).

    ``train_mode=True`` attacks the model in train mode (batch statistics, dropout), as the
    authors' PGD-AT training code does; never with a CUDA graph (the step would replay the
    batch-statistics updates of the capture).

    ``count_survived=True`` also returns ``result.survived``: per example, the number of steps
    that started from a point the model classified correctly, in 0..steps (GAIRAT's kappa, as
    its authors' attack_generator.py counts it); it runs the steps eagerly.
    """
    return run_steps(_step, model, x, y, attack, alpha=alpha, loss=loss, natural_logits=natural_logits,
                     generator=generator, index=index, seed=seed, precision=precision, cuda_graph=cuda_graph,
                     compile_model=compile_model, train_mode=train_mode, count_survived=count_survived)


def run_steps(
    step: StepFn, model: nn.Module, x: Tensor, y: Tensor, attack: AttackConfig, *, alpha: Alpha = None,
    loss: InnerLoss | str = InnerLoss.CE, natural_logits: Tensor | None = None,
    generator: torch.Generator | None = None, index: Tensor | None = None, seed: int = 0,
    precision: Precision | str = Precision.FP32, cuda_graph: bool | None = None, compile_model: bool = False,
    train_mode: bool = False, count_survived: bool = False,
) -> AttackResult:
    """:func:`pgd` with another step function (same starts, restarts, fast paths and choice among
    restarts): :mod:`.lsa` and :mod:`.cw` run their objectives through it. ``step`` must be
    hashable and equal for equal settings (a CUDA graph is cached per step)."""
    loss = parse_enum(InnerLoss, loss, "loss")
    precision = parse_enum(Precision, precision, "precision")
    x = x.detach()
    inputs = _step_inputs(x, y, attack, alpha, loss, natural_logits)
    if count_survived:
        inputs.survived = torch.zeros(y.shape, dtype=torch.int64, device=y.device)
    graph = use_cuda_graph(x, False if (train_mode or count_survived) else cuda_graph)
    forward = model_forward(model, x.device.type, precision, compile_model, in_graph=graph)
    stepper = make_stepper(step, forward, inputs, model=model, graph=graph, precision=precision,
                           compiled=compile_model)
    with attack_mode(model, train=train_mode):
        return _restarts(model, stepper, x, y, attack, generator, index, seed, precision, inputs)
