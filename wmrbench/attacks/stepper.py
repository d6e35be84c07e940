"""The fast path: run one attack step ``steps`` times, eagerly or by replaying a CUDA graph.

An attack (``pgd._step``) is one fixed-shape function ``step(forward, x_adv, inputs) -> x_adv``,
for either norm (the L2 step's per-example norms and projection are device-side reductions, so
it is captured like the L-infinity one); a :class:`Stepper` repeats it. Both steppers compute the same thing and share one interface,
``run(x_adv, steps) -> x_adv``:

* :class:`EagerStepper`: the plain Python loop (the CPU default).
* :class:`GraphStepper` (on by default for CUDA inputs): one step is captured once per (model
  weights, shapes, settings) and replayed for every further step and batch, so the step's
  hundreds of kernels become one launch, which is what small CIFAR models at training batch
  sizes are bound by. The captured kernels are the eager step's own, reading the model's weights
  in place (optimizer steps update them in place), so a replay computes what the eager step
  would. A model that cannot be captured (host syncs, data-dependent control flow) is logged
  once, on the ``wmrbench.attacks`` logger, and then attacked eagerly.

Independently, ``compile_model`` runs the model through ``torch.compile`` (:func:`model_forward`).
Performance rules: parameters are frozen during attacks, so the backward
pass computes input gradients only, and no step reads a value back to the host.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from wmrbench.attacks.objective import Alpha, autocast
from wmrbench.core.attack_config import InnerLoss, Norm, Precision

logger = logging.getLogger("wmrbench.attacks")

_GRAPH_WARMUP_STEPS = 2  # eager steps on a side stream before capture (cuBLAS/cuDNN set-up)
_GRAPHS_PER_MODEL = 4  # least-recently used graphs beyond this are dropped (each holds memory)

Forward = Callable[[Tensor], Tensor]  # the model (eager or compiled) at x -> logits


@dataclass
class StepInputs:
    """Everything one step reads besides the current point; fixed for a whole attack call."""

    y: Tensor  # true labels
    lower: Tensor | None  # L-infinity: max(x - eps, 0), the eps-ball intersected with [0, 1]
    upper: Tensor | None  # L-infinity: min(x + eps, 1); both None for L2
    step_size: float
    loss: InnerLoss
    natural_probs: Tensor | None  # softmax of the logits at x (the KL loss), else None
    alpha: Alpha  # None (plain), a float, or a per-example float32 tensor
    norm: Norm = Norm.LINF
    center: Tensor | None = None  # L2: x, the ball's centre (a ball is not a box: no lower/upper)
    eps: float = 0.0  # L2: the ball's radius
    # GAIRAT's kappa: when a tensor, each step adds 1 for every example its current point still
    # classifies correctly (eager steps only: a captured graph would count into its own copy).
    survived: Tensor | None = None


StepFn = Callable[[Forward, Tensor, StepInputs], Tensor]  # (forward, x_adv, inputs) -> next x_adv


class Stepper(Protocol):
    def run(self, x_adv: Tensor, steps: int) -> Tensor:
        """``steps`` steps from ``x_adv``; returns the last point (a new tensor)."""
        ...


@dataclass
class EagerStepper:
    step: StepFn
    forward: Forward
    inputs: StepInputs

    def run(self, x_adv: Tensor, steps: int) -> Tensor:
        for _ in range(steps):
            x_adv = self.step(self.forward, x_adv, self.inputs)
        return x_adv


def model_forward(
    model: nn.Module, device_type: str, precision: Precision, compile_model: bool, in_graph: bool
) -> Forward:
    """The model at ``precision`` as the steps call it, through ``torch.compile`` if asked."""
    net = torch.compile(model, dynamic=False) if compile_model else model

    def forward(x: Tensor) -> Tensor:
        with autocast(device_type, precision, cache_enabled=not in_graph):
            return net(x)

    return forward


def use_cuda_graph(x: Tensor, cuda_graph: bool | None) -> bool:
    """``cuda_graph`` None means: on for CUDA inputs. Never under a caller's CUDA autocast: its
    weight-cast cache would leak stale casts into a graph."""
    wanted = x.is_cuda if cuda_graph is None else (cuda_graph and x.is_cuda)
    return wanted and not (x.is_cuda and torch.is_autocast_enabled("cuda"))


# ---------------------------------------------------------------------------------------------
# CUDA graphs
# ---------------------------------------------------------------------------------------------


@dataclass
class _StepGraph:
    graph: torch.cuda.CUDAGraph
    x_adv: Tensor  # static buffers: copy in, replay, read out
    inputs: StepInputs  # static copies of the tensor inputs; float settings are baked in

    def load(self, inputs: StepInputs) -> None:
        """Copy a new call's tensors into the captured buffers (same shapes, by the cache key)."""
        for field in dataclasses.fields(inputs):
            static = getattr(self.inputs, field.name)
            if isinstance(static, Tensor):
                static.copy_(getattr(inputs, field.name))


class GraphCache:
    """Captured steps per model (weakly referenced: a deleted model frees its graphs) and per key
    (weights' addresses, shapes, settings), the least recently used dropped beyond ``per_model``.
    A key whose capture failed maps to None, so that it is tried, and logged, only once (unless
    enough other shapes of the same model push the marker out of the LRU).

    :data:`GRAPH_CACHE` is the process-wide default every attack uses; ``clear()`` frees the
    device memory its graphs hold.
    """

    def __init__(self, per_model: int = _GRAPHS_PER_MODEL) -> None:
        self.per_model = per_model
        self._graphs: weakref.WeakKeyDictionary[nn.Module, OrderedDict[tuple, _StepGraph | None]] = (
            weakref.WeakKeyDictionary()
        )

    def failed(self, model: nn.Module, key: tuple) -> bool:
        per_model = self._graphs.get(model)
        return per_model is not None and key in per_model and per_model[key] is None

    def get(self, model: nn.Module, key: tuple) -> _StepGraph | None:
        per_model = self._graphs.get(model)
        entry = None if per_model is None else per_model.get(key)
        if entry is not None:
            per_model.move_to_end(key)  # type: ignore[union-attr]
        return entry

    def put(self, model: nn.Module, key: tuple, entry: _StepGraph | None) -> None:
        per_model = self._graphs.setdefault(model, OrderedDict())
        per_model[key] = entry
        while len(per_model) > self.per_model:
            per_model.popitem(last=False)

    def clear(self) -> None:
        self._graphs.clear()


GRAPH_CACHE = GraphCache()


@dataclass
class GraphStepper:
    """Steps through a cached CUDA graph; eager where capture is not worth it or failed."""

    step: StepFn
    forward: Forward
    inputs: StepInputs
    model: nn.Module  # the bare module: the cache is keyed on it and on its weights' storage
    precision: Precision
    compiled: bool
    cache: GraphCache = GRAPH_CACHE

    def run(self, x_adv: Tensor, steps: int) -> Tensor:
        if steps == 0:
            return x_adv
        eager = EagerStepper(self.step, self.forward, self.inputs)
        key = self._key(x_adv)
        if self.cache.failed(self.model, key):
            return eager.run(x_adv, steps)
        entry = self.cache.get(self.model, key)
        done = 0
        if entry is None:
            if steps <= _GRAPH_WARMUP_STEPS:
                return eager.run(x_adv, steps)  # too few steps to be worth a capture
            x_adv = self._warm_up(x_adv)
            done = _GRAPH_WARMUP_STEPS
            entry = self._capture(x_adv, key)
            if entry is None:
                return eager.run(x_adv, steps - done)
        else:
            entry.load(self.inputs)
        entry.x_adv.copy_(x_adv)
        for _ in range(steps - done):
            entry.graph.replay()
        # A copy: the static buffer is overwritten by the next replay.
        return entry.x_adv.clone()

    def _key(self, x_adv: Tensor) -> tuple:
        # Weights are read by address: a model moved or reloaded into new storage gets a new graph.
        storage = tuple(t.data_ptr() for t in (*self.model.parameters(), *self.model.buffers()))
        inputs = self.inputs
        alpha = inputs.alpha
        alpha_key = ("tensor", alpha.dtype) if isinstance(alpha, Tensor) else alpha
        probs = inputs.natural_probs
        probs_key = None if probs is None else (probs.shape, probs.dtype)
        # The L2 radius is baked into the captured step as a constant (L-infinity's ball is in
        # the lower/upper tensors, which are loaded per call: eps needs no key there).
        ball_key = (inputs.norm, inputs.eps if inputs.norm is Norm.L2 else None)
        return (storage, x_adv.shape, x_adv.stride(), x_adv.dtype, x_adv.device, inputs.y.dtype,
                inputs.step_size, inputs.loss, alpha_key, probs_key, ball_key, self.precision,
                self.compiled, self.step)

    def _warm_up(self, x_adv: Tensor) -> Tensor:
        # Warm-up steps are real steps of this attack, run eagerly on a side stream.
        device = x_adv.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            x_adv = EagerStepper(self.step, self.forward, self.inputs).run(x_adv, _GRAPH_WARMUP_STEPS)
        torch.cuda.current_stream(device).wait_stream(side)
        return x_adv

    def _capture(self, x_adv: Tensor, key: tuple) -> _StepGraph | None:
        """Capture one step from static copies of the inputs; None (logged once) on failure."""
        tensors = {f.name: getattr(self.inputs, f.name) for f in dataclasses.fields(self.inputs)}
        copies = {name: v.clone() for name, v in tensors.items() if isinstance(v, Tensor)}
        static = _StepGraph(torch.cuda.CUDAGraph(), x_adv.clone(), dataclasses.replace(self.inputs, **copies))
        try:
            with torch.cuda.graph(static.graph):
                static.x_adv.copy_(self.step(self.forward, static.x_adv, static.inputs))
        except RuntimeError as exc:
            torch.cuda.synchronize(x_adv.device)
            self.cache.put(self.model, key, None)  # remembered: no second capture, no second log
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.warning(
                "CUDA graph capture failed for %s on inputs of shape %s; attacking it eagerly from "
                "now on (same steps, slower): %s", type(self.model).__name__, tuple(x_adv.shape), reason,
            )
            return None
        self.cache.put(self.model, key, static)
        return static


def make_stepper(
    step: StepFn, forward: Forward, inputs: StepInputs, *, model: nn.Module, graph: bool,
    precision: Precision, compiled: bool, cache: GraphCache | None = None,
) -> Stepper:
    """The eager loop, or (``graph``) CUDA-graph replay of ``step`` on ``model``."""
    if not graph:
        return EagerStepper(step, forward, inputs)
    cache = GRAPH_CACHE if cache is None else cache
    return GraphStepper(step, forward, inputs, model, precision, compiled, cache)
