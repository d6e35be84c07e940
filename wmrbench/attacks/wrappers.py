"""Weighted PGD and APGD as objects, the way torchattacks hands out its attacks:
``atk = WeightedPGD(model, eps=0.3, alpha=2.0); x_adv = atk(x, y)``.

A thin layer over the engine the CLI runs (:func:`.pgd.pgd`, :func:`.apgd.apgd`, through the
registry, with the CLI's keyed starts): the settings become one :class:`AttackConfig`, a call
runs one engine call. Followed for the shape of the interface (not the code): torchattacks'
``Attack.__call__`` and ``PGD`` (``torchattacks/attack.py``, ``attacks/pgd.py``): the device is the
model's, the model is attacked in eval mode and its mode restored, inputs are images in [0, 1].

One difference in wording: torchattacks' ``alpha`` is PGD's step size. Here ``step_size`` is the
step size and ``alpha`` is the paper's weight exponent, ``s_i = exp(-alpha * margin_i)``; alpha 0 is
plain (unweighted) PGD, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from wmrbench.attacks.inputs import check_attack_inputs
from wmrbench.attacks.objective import AttackResult, importance_weights
from wmrbench.attacks.registry import get_attack
from wmrbench.core.attack_config import AttackConfig, Precision
from wmrbench.core.checks import check_alpha, check_seed, parse_enum
from wmrbench.core.defaults import DEFAULTS, scaled_step_size
from wmrbench.core.errors import WmrbenchError

_EVAL = DEFAULTS.eval_attack  # no data set named: the library's one rule (wmrbench.core.defaults)


@dataclass(frozen=True)
class WeightedAttackResult:
    """What one attack call found, per example (all on the model's device)."""

    x_adv: Tensor  # the adversarial inputs, in the eps-ball around x and in [0, 1]
    logits: Tensor  # the model's logits (eval mode) at x_adv
    margin: Tensor  # p_y - max_{t != y} p_t at x_adv: negative exactly when misclassified
    correct: Tensor  # bool: argmax(logits) == y
    # s_i = exp(-alpha * margin_i) at the attack's alpha (ones at alpha 0); float32, so it
    # overflows for alpha above ~88: metrics.normalized_weights(margin, alpha) gives the shares
    weights: Tensor
    restart: Tensor  # int64: the 0-based restart whose point was kept


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model with neither)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


class _Attack:
    """The shared body of :class:`WeightedPGD` and :class:`WeightedAPGD`."""

    _engine = ""  # the registered attack's name

    def __init__(
        self, model: nn.Module, *, eps: float, step_size: float, steps: int, alpha: float | Tensor,
        norm: str, restarts: int, start: str, seed: int, precision: str,
    ) -> None:
        self.model = model
        self.attack = AttackConfig(eps=eps, step_size=step_size, steps=steps, restarts=restarts, start=start, norm=norm)
        # a tensor alpha's values are read at each call, with the batch (wmrbench.attacks.inputs)
        self.alpha = alpha if isinstance(alpha, Tensor) else check_alpha(alpha)
        self.seed = check_seed(seed)
        self.precision = parse_enum(Precision, precision, "precision")

    def _options(self) -> dict[str, object]:
        return {}

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """The adversarial inputs ``x_adv`` (on the model's device)."""
        return self.run(x, y).x_adv

    def run(self, x: Tensor, y: Tensor, index: Tensor | None = None) -> WeightedAttackResult:
        """Attack ``x`` (images in [0, 1], NCHW) with true labels ``y``; the full result.

        Starts are keyed on (``seed``, ``index``), as in ``wmrbench attack`` / ``evaluate``:
        ``index`` is each example's id in its data set (default ``0..N-1``), so an example's
        start depends on nothing else and the same call gives the same points. Give the data
        set positions to get exactly the CLI's points for those examples.
        """
        device = model_device(self.model)
        # The same check as wmrbench.evaluate and wmrbench.losses: once per call, one host sync.
        checked = check_attack_inputs(self.model, x, y, self.alpha, device)
        x, y, alpha = checked.x, checked.y, checked.alpha
        if index is not None and (not isinstance(index, Tensor) or index.dim() != 1 or len(index) != len(y)):
            shape = tuple(index.shape) if isinstance(index, Tensor) else type(index).__name__
            raise WmrbenchError(f"index must hold one id per example ({len(y)}); got {shape}")
        index = torch.arange(len(y), device=device) if index is None else index.to(device)
        result: AttackResult = get_attack(self._engine).run(
            self.model, x, y, self.attack, alpha=alpha, index=index, seed=self.seed, precision=self.precision,
            **self._options(),
        )
        return WeightedAttackResult(
            x_adv=result.x_adv, logits=result.logits, margin=result.margin, correct=result.logits.argmax(dim=1) == y,
            weights=importance_weights(result.logits, y, alpha), restart=result.restart,
        )

    def __repr__(self) -> str:
        a = self.attack
        return (f"{type(self).__name__}(eps={a.eps:g}, step_size={a.step_size:g}, steps={a.steps}, alpha={self.alpha}, "
                f"norm={a.norm.value!r}, restarts={a.restarts}, start={a.start.value!r}, seed={self.seed})")


class WeightedPGD(_Attack):
    """Weighted PGD (Algorithm 1 of Zeng et al., AAAI 2021): ascends ``sum_i s_i * CE_i`` with
    ``s_i = exp(-alpha * margin_i)`` kept in the autograd graph; ``alpha=0`` is plain PGD.

    ``atk(x, y)`` returns ``x_adv``; ``atk.run(x, y)`` the full :class:`WeightedAttackResult`.
    ``x``: images in [0, 1] (any normalization is a layer inside the model); they are moved to
    the model's device and so is everything returned. The model runs in eval mode with gradients
    for the input only; its mode and its parameters' ``requires_grad`` are restored after.

    ``eps``/``step_size``/``steps``/``restarts``: the ``norm`` ball (``"linf"`` or ``"l2"``), the
    step, the number of steps and of restarts (the per-example pick among restarts is the
    engine's: a misclassified point with the lowest margin, else the highest margin). The
    defaults are the library's (:mod:`wmrbench.core.defaults`: the paper's CIFAR-10 evaluation,
    PGD-20 of step 0.003 at eps 0.031); ``step_size`` left out with another ``eps`` or ``steps``
    keeps that walk's reach, ``steps * step_size / eps``.
    ``alpha``: a float >= 0, or a per-example tensor (N,). ``start``: ``"uniform"`` (Madry, the
    evaluation default), ``"normal"`` (x + 0.001 N(0, I), Algorithm 1) or ``"zero"``. ``seed``:
    the keyed starts' seed. ``precision``: ``"fp32"`` or ``"bf16"`` (autocast).
    """

    _engine = "pgd"

    def __init__(
        self, model: nn.Module, *, eps: float = _EVAL.eps, step_size: float | None = None,
        steps: int = _EVAL.steps, alpha: float | Tensor = 0.0, norm: str = "linf", restarts: int = 1, start: str = "uniform", seed: int = 0,
        precision: str = "fp32",
    ) -> None:
        if step_size is None:
            step_size = scaled_step_size(eps, steps, _EVAL)
        super().__init__(model, eps=eps, step_size=step_size, steps=steps, alpha=alpha, norm=norm, restarts=restarts,
                         start=start, seed=seed, precision=precision)


class WeightedAPGD(_Attack):
    """Weighted APGD (Croce and Hein 2020 on the objective ``s_i * l_i``), ``l`` = ``loss``:
    ``"ce"`` or ``"dlr"``. ``alpha=0`` is plain APGD (pyautoattack's schedule), bit for bit.

    As :class:`WeightedPGD`, except: there is no ``step_size`` (APGD starts at ``2 * eps`` and
    halves it by its own schedule) and ``steps`` is APGD's iteration budget (100 in AutoAttack).
    """

    def __init__(
        self, model: nn.Module, *, eps: float = _EVAL.eps, steps: int = DEFAULTS.apgd_steps,
        alpha: float | Tensor = 0.0, loss: str = "ce", norm: str = "linf", restarts: int = 1, start: str = "uniform", seed: int = 0,
        precision: str = "fp32",
    ) -> None:
        if loss not in ("ce", "dlr"):
            raise WmrbenchError(f"loss must be 'ce' or 'dlr'; got {loss!r}")
        # step_size is ignored by APGD; AttackConfig needs a value, and 0 says that none is taken.
        super().__init__(model, eps=eps, step_size=0.0, steps=steps, alpha=alpha, norm=norm, restarts=restarts,
                         start=start, seed=seed, precision=precision)
        self.loss = loss
        self._engine = f"apgd-{loss}"

    def __repr__(self) -> str:
        a = self.attack
        return (f"WeightedAPGD(eps={a.eps:g}, steps={a.steps}, alpha={self.alpha}, loss={self.loss!r}, "
                f"norm={a.norm.value!r}, restarts={a.restarts}, start={a.start.value!r}, seed={self.seed})")
