"""``--stack on``: the runs of a sweep trained as ONE stacked model, one attack and one forward/backward
for all of them per step.

A SmallCNN at batch 128 cannot fill a GPU: four runs taking turns (:func:`wmrbench.training.fit_sweep`,
``--stack off``) cost four runs. Stacked, every step is:

1. each run's weights are stacked along a new leading dimension (``torch.stack`` of the runs' own
   parameters and buffers, the layout of ``torch.func.stack_module_state``) and the architecture
   runs once for all runs through ``torch.func.functional_call`` under ``torch.func.vmap``
   (``impl="vmap"``; on the GPU a convolution with batched weights becomes one grouped
   convolution), or run by run (``impl="loop"``, the exact reference);
2. ONE training attack for all runs (:func:`wmrbench.attacks.stacked.mixed_pgd`) on a batch of
   ``runs * batch`` rows: each run's rows ascend its own inner loss (CE for PGD-AT, KL for TRADES)
   with its own alpha, from starts drawn from the run's own generator, exactly as it draws them
   alone;
3. the training forward of every run at its adversarial points (and, for the TRADES runs, at x),
   each run's own objective (:mod:`wmrbench.defenses.objectives`: its defense, alpha, beta, weighting),
   ONE backward through the sum of the runs' losses (each run's gradient is its own loss's: the
   losses share no weights), then each run's own SGD (``foreach=True``) with its own lr schedule
   and weight decay.

Each run keeps its own ``nn.Module``, optimizer and scheduler, so its folder, lock, ``last.pt`` (the
solo format), ``best.pt``, ``metrics.jsonl``, resume and divergence stop are :func:`fit_sweep`'s own:
this module only replaces the epoch (``fit_sweep(..., train_epoch=...)``).

Randomness: dropout cannot draw inside ``vmap`` the masks a run draws alone, so the dropout layers
of the stacked copy take their masks as inputs (:class:`GivenMaskDropout`), drawn before the forward
from each run's own dropout generator, seeded as :func:`wmrbench.training.epoch_generators` seeds
the global one, with the same call ATen's CPU dropout makes (``bernoulli_(1 - p)`` then
``div_(1 - p)``): on the CPU each run's masks are bit for bit its solo masks. (On CUDA a solo run's
dropout is the fused kernel, with other random numbers: the same distribution, not the same draws.)
BatchNorm buffers are stacked with the weights and updated in place, run by run.

No host synchronisation inside an epoch: the running sums stay on the device and each run's loss and
weights are checked once, at the end of the epoch (today's check, :meth:`Tally.running_loss` and
:func:`check_finite_weights`, each one call, so a new divergence rule swaps in at one place). A run
whose loss turned non-finite mid-epoch takes the epoch's remaining steps on its own rows (the runs
share no weights and every per-example operation is row-wise, so it cannot touch the others) and
then stops alone with its last good checkpoint kept; the others go on.

Measured (tests/training/test_stacked.py, CPU, fp32): ``impl="loop"`` gives each run's weights and history bit
for bit those of the run trained alone; ``impl="vmap"`` gives SmallCNN's forward bit for bit and
differs from solo by float32 rounding elsewhere (batched convolution and matmul kernels add in
another order): see docs/reproduction.md for the measured tolerances.

Pattern followed: the model-ensembling tutorial of PyTorch (``torch.func.stack_module_state`` +
``functional_call`` + ``vmap``), https://pytorch.org/tutorials/intermediate/ensembling.html.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from wmrbench.core import distributed
from wmrbench.attacks import autocast, start_point, upcast
from wmrbench.attacks.stacked import mixed_pgd
from wmrbench.core.attack_config import Norm
from wmrbench.core.checks import parse_enum
from wmrbench.core.config import AttackMode, Defense, TrainConfig
from wmrbench.data import ImageSet, batches
from wmrbench.data.augment import random_crop_flip
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.defenses.objectives import Objective, pgd_at_objective, trades_objective
from wmrbench.core.runtime import autocast_dtype, prepare_input
from wmrbench.training.divergence import Diverged
from wmrbench.training.loop import fit_sweep
from wmrbench.training.step import Run, Tally
from wmrbench.training.streams import DROPOUT, epoch_generators, stream_seed
from wmrbench.training.sweep import SweepResult

STACKABLE_DEFENSES = (Defense.PGD, Defense.TRADES)
# Besides the data settings every sweep shares (training.SHARED_BY_SWEEP): one architecture to
# stack, one attack (its steps are shared), one precision (one autocast).
SHARED_BY_STACK = ("arch", "attack", "attack_mode", "precision")
IMPLS = ("auto", "vmap", "loop")

# The way out of every refusal: train the runs one by one.
OFF = f"use {setting('stack', 'off')}"


class Stack(str, Enum):
    """``--stack``: how the runs of a sweep train."""

    ON = "on"  # one stacked model; runs that cannot stack are refused with one line
    OFF = "off"  # fit_sweep's runs taking turns, each bit for bit its solo run (the default)


# Off by default: on the CPU stacking was measured no faster (benchmarks/reference/cpu-quick/stack.json),
# and its GPU speed is still to be measured (docs/reproduction.md).
DEFAULT_STACK = Stack.OFF


def resolve_impl(impl: str, device: torch.device) -> str:
    """``auto``: run by run on the CPU (measured bit for bit solo; vmap's batched convolutions are
    slower there), vmap on CUDA (one grouped kernel per layer for every run)."""
    if impl != "auto":
        return impl
    return "vmap" if device.type == "cuda" else "loop"


def use_stack(stack: Stack | str, cfgs: Sequence[TrainConfig]) -> bool:
    """Whether ``--stack`` trains these runs stacked; ``on`` with runs that cannot be is one line."""
    if parse_enum(Stack, stack, "stack") is Stack.OFF:
        return False
    reason = stack_refusal(cfgs)
    if reason is not None:
        raise WmrbenchError(f"{setting('stack', 'on')}: {reason}")
    return True


def stack_refusal(cfgs: Sequence[TrainConfig]) -> str | None:
    """Why these runs cannot train stacked (one line), or None."""
    for cfg in cfgs:
        if cfg.defense not in STACKABLE_DEFENSES:
            return (f"run {cfg.run!r} trains {setting('defense', cfg.defense.value)}; only "
                    f"{' and '.join(d.value for d in STACKABLE_DEFENSES)} train stacked: {OFF}")
        if cfg.attack_mode is not AttackMode.EVAL:
            return (f"run {cfg.run!r} attacks in train mode ({setting('attack_mode', 'train')}); stacked runs attack in eval "
                    f"mode: {OFF}")
        if cfg.attack.norm is not Norm.LINF or cfg.attack.restarts != 1:
            return f"run {cfg.run!r} trains with an L2 or multi-restart attack; stacked runs take one L-infinity restart: {OFF}"
        if cfg.compile:
            return f"run {cfg.run!r} asks for {setting('compile', True)}; the stacked step does not compile the model: {OFF}"
        if cfg.max_steps:  # the stacked epoch takes every batch: a cap would be silently ignored
            return f"run {cfg.run!r} asks for {setting('max_steps', cfg.max_steps)}; stacked runs take every batch: {OFF}"
    for cfg in cfgs[1:]:
        differ = [name for name in SHARED_BY_STACK if getattr(cfg, name) != getattr(cfgs[0], name)]
        if differ:
            return (f"runs {cfgs[0].run!r} and {cfg.run!r} differ in {', '.join(differ)}; stacked runs share "
                    f"the architecture, the training attack and the precision: {OFF}")
    if distributed.env_world_size() > 1:
        return f"stacked runs train in one process: run without torchrun, or {OFF}"
    return None


def fit_stacked(
    cfgs: Sequence[TrainConfig], *, resume: bool = False, missing_ok: bool = False,
    stop_after_epochs: int | None = None, show_progress: bool = True, impl: str = "auto",
) -> SweepResult:
    """:func:`wmrbench.training.fit_sweep` with every epoch taken by the stacked step.

    The same folders, locks, checkpoints, resume and per-run divergence stop; ``impl``:
    ``"vmap"`` (the fast path) or ``"loop"`` (each run's forward on its own: bit for bit solo on
    the CPU, for tests and checks).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}")
    use_stack(Stack.ON, cfgs)
    if cfgs:
        impl = resolve_impl(impl, distributed.resolve_device(cfgs[0].device))
    return fit_sweep(cfgs, resume=resume, missing_ok=missing_ok, stop_after_epochs=stop_after_epochs,
                     show_progress=show_progress, train_epoch=functools.partial(train_epoch, impl=impl),
                     seeds_may_differ=True)


def fit_runs(
    cfgs: Sequence[TrainConfig], *, stack: Stack | str = DEFAULT_STACK, resume: bool = False, missing_ok: bool = False,
    stop_after_epochs: int | None = None, show_progress: bool = True,
) -> SweepResult:
    """Train the runs of a sweep: stacked (:func:`wmrbench.training.stacked.fit_stacked`) or taking turns
    (:func:`wmrbench.training.loop.fit_sweep`, ``--stack off``), as ``stack`` and the runs allow
    (:func:`wmrbench.training.stacked.use_stack`). Both write the same folders and checkpoints."""
    train = fit_stacked if use_stack(stack, cfgs) else fit_sweep
    return train(cfgs, resume=resume, missing_ok=missing_ok, stop_after_epochs=stop_after_epochs,
                 show_progress=show_progress)

def fit_groups(
    groups: Sequence[Sequence[TrainConfig]], *, stack: Stack | str = DEFAULT_STACK, resume: bool = False,
    missing_ok: bool = False, stop_after_epochs: int | None = None, show_progress: bool = True,
) -> SweepResult:
    """``train --seeds``: one sweep per seed (its runs share the seed's data order), trained by
    :func:`fit_runs` one after the other; with ``stack`` on, every seed's runs as ONE stack
    instead, each run drawing its own batches into its own rows (no held-out split: the seed
    carves it). The results in the order given; a run that diverged is in ``failures``."""
    every = [cfg for cfgs in groups for cfg in cfgs]
    if len(groups) > 1 and use_stack(stack, every) and not every[0].val_size:
        # One stack for every seed: each run draws its own batches in its own rows (train_epoch).
        return fit_stacked(every, resume=resume, missing_ok=missing_ok, stop_after_epochs=stop_after_epochs,
                           show_progress=show_progress)
    results, failures = [], {}
    for cfgs in groups:
        done = fit_runs(cfgs, stack=stack, resume=resume, missing_ok=missing_ok, stop_after_epochs=stop_after_epochs,
                        show_progress=show_progress)
        results.extend(done.results)
        failures.update(done.failures)
    return SweepResult(results, failures)


class GivenMaskDropout(nn.Module):
    """``nn.Dropout`` whose scaled mask (0 or 1/(1-p)) is an input, the buffer ``mask``: the masks of
    every run are drawn outside ``vmap``, each from its run's own generator."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.empty(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.mask if self.training and self.p > 0 else x


def _template(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` on the meta device (its tensors are never used: functional_call gives
    them) with every ``nn.Dropout`` replaced by :class:`GivenMaskDropout`; and their names."""
    base = copy.deepcopy(model).to("meta")
    names = []
    for name, module in list(base.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Dropout):
                setattr(module, child_name, GivenMaskDropout(child.p))
                names.append(f"{name}.{child_name}" if name else child_name)
            elif isinstance(child, nn.modules.dropout._DropoutNd):
                raise WmrbenchError(f"{setting('stack', 'on')}: {type(child).__name__} layers are not stacked yet: {OFF}")
    return base, names


def _apply(base: nn.Module, tensors: dict[str, Tensor], x: Tensor, n: int, impl: str, shared: bool) -> Tensor:
    """Every run's logits, one block of rows per run: ``x`` holds one block per run, or (``shared``)
    one block every run takes."""
    if impl == "vmap":
        def one(t: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(base, t, (xi,))
        if shared:
            return vmap(one, in_dims=(0, None))(tensors, x).flatten(0, 1)
        return vmap(one)(tensors, x.unflatten(0, (n, -1))).flatten(0, 1)
    xs = [x] * n if shared else list(x.unflatten(0, (n, -1)).unbind(0))
    return torch.cat([functional_call(base, {k: v[r] for k, v in tensors.items()}, (xs[r],)) for r in range(n)])


class StackedNet(nn.Module):
    """The runs' models as one module on ``runs * batch`` rows, for the attack: its buffers are the
    stacked weights, refreshed in place from the runs before every attack (:meth:`load`), so the
    attack's CUDA graph, keyed on their storage, is captured once and replayed."""

    def __init__(self, models: Sequence[nn.Module], impl: str) -> None:
        super().__init__()
        base, self.dropouts = _template(models[0])
        object.__setattr__(self, "base", base)  # not a submodule: it holds no real tensors
        self.n, self.impl = len(models), impl
        state = _state(models[0])
        self.keys = list(state)
        self.param_keys = [k for k, _ in models[0].named_parameters()]
        self.buffer_keys = [k for k in self.keys if k not in self.param_keys]
        for i, key in enumerate(self.keys):
            self.register_buffer(f"w{i}", state[key].new_empty((self.n, *state[key].shape)), persistent=False)
        self._constants: dict[tuple[str, int], Tensor] = {}
        self.load(models)

    def constant(self, name: str, make: Any, rows: int) -> Tensor:
        """A per-run constant (alpha, loss choice, run indices) repeated ``rows`` times, on the
        weights' device, made once: a tensor built from a Python list is a host-to-device copy
        from pageable memory, which waits for the device (a sync per step)."""
        key = (name, rows)
        if key not in self._constants:
            self._constants[key] = make().repeat_interleave(rows).to(self.w0.device)
        return self._constants[key]

    def stacked(self) -> dict[str, Tensor]:
        return {key: getattr(self, f"w{i}") for i, key in enumerate(self.keys)}

    @torch.no_grad()
    def load(self, models: Sequence[nn.Module]) -> None:
        states = [_state(m) for m in models]
        for key, target in self.stacked().items():
            torch.stack([s[key] for s in states], out=target)

    def forward(self, x: Tensor) -> Tensor:
        self.base.train(self.training)
        return _apply(self.base, self.stacked(), x, self.n, self.impl, shared=False)

    def shared(self, x: Tensor) -> Tensor:
        """Every run's logits at the same ``x`` (one block of rows per run)."""
        self.base.train(self.training)
        return _apply(self.base, self.stacked(), x, self.n, self.impl, shared=True)


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


class _Masks:
    """Dropout masks per run: the generator of each run, and the shapes each layer sees per batch size."""

    def __init__(self, net: StackedNet, cfgs: Sequence[TrainConfig], epoch: int, rank: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.net, self.device, self.dtype = net, device, dtype
        # Seeded as epoch_generators seeds the global generator a solo run's dropout draws from.
        self.generators = [torch.Generator(device=device).manual_seed(stream_seed(c.seed, epoch, rank, DROPOUT))
                           for c in cfgs]
        self.shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def _shapes(self, x: Tensor) -> list[tuple[int, ...]]:
        """The input shape of each dropout layer, in call order, for one run's batch like ``x``
        (a forward on the meta device: no arithmetic)."""
        key = tuple(x.shape)
        if key not in self.shapes:
            seen: list[tuple[int, ...]] = []
            base = self.net.base
            hooks = [base.get_submodule(n).register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
                     for n in self.net.dropouts]
            was_training = base.training
            try:
                base.eval()
                with torch.no_grad():
                    base(torch.empty(x.shape, device="meta"))
            finally:
                base.train(was_training)
                for h in hooks:
                    h.remove()
            self.shapes[key] = seen
        return self.shapes[key]

    def draw(self, x: Tensor, runs: Sequence[int]) -> dict[str, Tensor]:
        """One forward's masks for ``runs`` (stacked per layer), each run drawing from its own
        generator what nn.Dropout draws alone: ``empty_like(input).bernoulli_(1 - p).div_(1 - p)``."""
        if not self.net.dropouts:
            return {}
        shapes = self._shapes(x)
        if len(shapes) != len(self.net.dropouts):
            raise WmrbenchError(f"{setting('stack', 'on')}: a dropout layer is called more or less than once per forward: {OFF}")
        per_layer: list[list[Tensor]] = [[] for _ in shapes]
        for r in runs:
            for layer, (name, shape) in enumerate(zip(self.net.dropouts, shapes)):
                p = self.net.base.get_submodule(name).p
                mask = torch.empty(shape, device=self.device, dtype=self.dtype)
                if 0 < p < 1:
                    mask.bernoulli_(1 - p, generator=self.generators[r]).div_(1 - p)
                else:
                    mask.fill_(0.0 if p >= 1 else 1.0)
                per_layer[layer].append(mask)
        return {f"{name}.mask": torch.stack(masks) for name, masks in zip(self.net.dropouts, per_layer)}


def _objective(cfg: TrainConfig, logits_nat: Tensor | None, logits_adv: Tensor, y: Tensor) -> Objective:
    """The run's own loss, by the same function :func:`wmrbench.training.train_step` calls."""
    weighting = dict(alpha=cfg.alpha_train, detach_weights=cfg.detach_weights, normalize_weights=cfg.normalize_weights)
    if cfg.defense is Defense.TRADES:
        assert logits_nat is not None
        return trades_objective(logits_nat, logits_adv, y, beta=cfg.beta, **weighting)
    return pgd_at_objective(logits_adv, y, **weighting)


def stacked_step(
    net: StackedNet, runs: Sequence[Run], x: Tensor, y: Tensor, attack_generators: Sequence[torch.Generator],
    masks: _Masks, cuda_graph: bool | None = None, per_run: bool = False,
) -> list[tuple[Objective, Tensor]]:
    """One step of every run: one attack, one forward/backward, each run's optimizer step.
    Returns each run's objective and the attack's margins on its rows. No host synchronisation.
    ``cuda_graph``: the attack's steps through one captured CUDA graph (None: on for CUDA inputs,
    as a solo run's training attack), or eagerly (False). ``per_run``: ``x`` and ``y`` hold one
    block of rows per run, each run's own batch (runs of other seeds draw other batches); else
    one batch every run takes."""
    cfgs = [run.cfg for run in runs]
    n, attack, precision = len(runs), cfgs[0].attack, cfgs[0].precision
    trades = [r for r, c in enumerate(cfgs) if c.defense is Defense.TRADES]
    device = x.device
    net.load([run.model for run in runs])
    if per_run:
        xs, ys = x, y
        own = list(x.unflatten(0, (n, -1)).unbind(0))  # each run's batch
    else:
        xs, ys = x.repeat(n, *[1] * (x.dim() - 1)), y.repeat(n)
        own = [x] * n
    rows = len(ys) // n
    alpha = net.constant("alpha", lambda: torch.tensor([c.alpha_train for c in cfgs], dtype=torch.float32), rows)
    kl = None
    natural_logits = None
    if trades:
        kl = net.constant("kl", lambda: torch.tensor([c.defense is Defense.TRADES for c in cfgs]), rows)
        natural_logits = predict_shared(net, xs if per_run else x, precision, trades, shared=not per_run)
    # Each run's start from its own generator: what pgd() draws for the run alone.
    x_start = torch.cat([start_point(xr, attack.eps, attack.start, 0, g, norm=attack.norm)
                         for xr, g in zip(own, attack_generators)])
    result = mixed_pgd(net, xs, ys, x_start.contiguous(memory_format=_memory_format(x)), attack, alpha=alpha, kl=kl,
                       natural_logits=natural_logits, precision=precision, cuda_graph=cuda_graph)

    # The training forward through the runs' own parameters (differentiable stacks of them), the
    # buffers stacked in ``net`` (BatchNorm updates them in place) and this step's dropout masks.
    params = {k: torch.stack([dict(run.model.named_parameters())[k] for run in runs]) for k in net.param_keys}
    buffers = {k: v for k, v in net.stacked().items() if k in net.buffer_keys}
    base = net.base.train()
    with autocast(device.type, precision):
        logits_adv = _apply(base, {**params, **buffers, **masks.draw(own[0], range(n))}, result.x_adv, n, net.impl, False)
        logits_nat, sub = None, {}
        if trades:  # only the TRADES runs take a forward at x (BatchNorm statistics, dropout draws)
            index = net.constant("trades", lambda: torch.tensor(trades), 1)
            sub = {k: v if len(trades) == n else v.index_select(0, index) for k, v in {**params, **buffers}.items()}
            at = torch.cat([own[t] for t in trades]) if per_run else x
            logits_nat = _apply(base, {**sub, **masks.draw(own[0], trades)}, at, len(trades), net.impl, not per_run)
    outcomes, losses = [], []
    for r, run in enumerate(runs):
        block = slice(r * rows, (r + 1) * rows)
        nat = None
        if run.cfg.defense is Defense.TRADES:
            assert logits_nat is not None
            t = trades.index(r)
            nat = logits_nat[t * rows:(t + 1) * rows]
        objective = _objective(run.cfg, nat, logits_adv[block], ys[block])
        outcomes.append((objective, result.margin[block]))
        losses.append(objective.loss)
    for run in runs:
        run.optimizer.zero_grad(set_to_none=True)
    # d(sum of losses)/d(loss of run r) is exactly 1, and run r's loss reads only run r's weights.
    torch.stack(losses).sum().backward()
    for run in runs:
        run.optimizer.step()
    # BatchNorm's updated statistics back into each run's module, after the backward (which
    # checks that the statistics it saved were not changed since). A TRADES run of a mixed stack
    # updated them last in its own copy (the forward at x).
    with torch.no_grad():
        for r, run in enumerate(runs):
            own = dict(run.model.named_buffers())
            for k in net.buffer_keys:
                if r in trades and len(trades) != n:
                    own[k].copy_(sub[k][trades.index(r)])
                else:
                    own[k].copy_(buffers[k][r])
    return outcomes


def predict_shared(net: StackedNet, x: Tensor, precision: Any, runs: Sequence[int], shared: bool = True) -> Tensor:
    """The eval-mode logits at the same x of the ``runs`` (the TRADES runs: their attack's p(x)), no
    gradients, in every run's block of rows; the other runs' blocks are zeros (their rows ascend
    CE, which does not read them). ``shared=False``: ``x`` holds one block per run of the stack
    (each run's own batch), and each of ``runs`` is taken at its own block."""
    was_training = net.training
    net.eval()
    net.base.eval()
    try:
        tensors = net.stacked()
        if len(runs) != net.n:
            index = net.constant("trades", lambda: torch.tensor(list(runs)), 1)
            tensors = {k: v.index_select(0, index) for k, v in tensors.items()}
        if not shared:
            blocks = x.unflatten(0, (net.n, -1))
            x = blocks.flatten(0, 1) if len(runs) == net.n else torch.cat([blocks[r] for r in runs])
        with torch.no_grad(), autocast(x.device.type, precision):
            logits = upcast(_apply(net.base, tensors, x, len(runs), net.impl, shared=shared))
    finally:
        net.train(was_training)
    if len(runs) == net.n:
        return logits
    blocks = list(logits.unflatten(0, (len(runs), -1)).unbind(0))
    zeros = torch.zeros_like(blocks[0])
    return torch.cat([blocks[list(runs).index(r)] if r in runs else zeros for r in range(net.n)])


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def train_epoch(
    runs: list[Run], train: ImageSet, *, epoch: int, device: torch.device, progress: Any,
    ctx: distributed.Context = distributed.Context(), impl: str = "loop",
) -> list[tuple[dict[str, Any], Tensor | None, Diverged | None]]:
    """One epoch of every run, stacked; per run (stats, weights, divergence or None), as
    :func:`wmrbench.training.step.train_epoch` returns them. The batches are those each run draws
    alone (the runs share the data settings and the seed's shuffle)."""
    started = time.perf_counter()
    data = runs[0].cfg
    generators = [epoch_generators(run.cfg.seed, epoch, ctx.rank, device) for run in runs]
    lrs = [run.optimizer.param_groups[0]["lr"] for run in runs]
    # Runs of other seeds (train --seeds --stack on) draw their own data order and augmentation:
    # each run's own batch goes into its own block of rows, as it would alone. One draw per
    # generator: a second would not be the order the run draws alone.
    per_run = len({run.cfg.seed for run in runs}) > 1
    orders = [torch.randperm(len(train), generator=g["shuffle"]) for g in (generators if per_run else generators[:1])]
    batch_size = data.batch_size
    n_batches = (len(orders[0]) + batch_size - 1) // batch_size
    task = progress.add_task(f"epoch {epoch + 1}/{data.epochs} ({len(runs)} runs stacked)", total=n_batches, info="")
    net = StackedNet([run.model for run in runs], impl).to(device)
    # Under bf16 autocast the layer before dropout gives bf16 activations: its masks are bf16 too.
    mask_dtype = autocast_dtype(data.precision) or torch.float32
    masks = _Masks(net, [run.cfg for run in runs], epoch, ctx.rank, device, mask_dtype)
    tallies = [Tally(device) for _ in runs]
    for step, drawn in enumerate(zip(*(batches(train, batch_size, o) for o in orders))):
        xs, ys = [], []
        for r, (_, x, y) in enumerate(drawn):
            if data.augment:
                x = random_crop_flip(x, generators[r]["augment"], padding_mode=data.padding_mode.value)
            xs.append(x)
            ys.append(y)
        x, y = (torch.cat(xs), torch.cat(ys)) if per_run else (xs[0], ys[0])
        x = prepare_input(x, device)
        outcomes = stacked_step(net, runs, x, y, [g["attack"] for g in generators], masks, per_run=per_run)
        for tally, (objective, margin) in zip(tallies, outcomes):
            tally.add(objective, margin, len(ys[0]))
        progress.update(task, completed=step + 1)  # a host-side count: no read-back
    progress.remove_task(task)
    seconds = time.perf_counter() - started
    results: list[tuple[dict[str, Any], Tensor | None, Diverged | None]] = []
    for i, run in enumerate(runs):
        problem = epoch_divergence(tallies[i], n_batches, epoch, lrs[i], ctx)
        if problem is not None:
            results.append(({}, None, problem))
        else:
            results.append((*tallies[i].stats(epoch, lrs[i], ctx, seconds), None))
    return results


def epoch_divergence(tally: Tally, n_batches: int, epoch: int, lr: float, ctx: distributed.Context) -> Diverged | None:
    """Today's divergence rule (training.step.Tally.running_loss), read once at the end of the epoch:
    the one place a new rule (a pure function of the per-epoch history) replaces it."""
    try:
        tally.running_loss(n_batches - 1, n_batches, epoch, lr, ctx)
    except Diverged as exc:
        return exc
    return None
