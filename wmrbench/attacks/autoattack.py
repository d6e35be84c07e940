"""AutoAttack (Croce and Hein 2020) through the ``pyautoattack`` package, as a wmrbench attack.

pyautoattack runs the attacks; this module only adapts the call: the model in eval mode with
frozen parameters (and, for ``precision="bf16"``, autocast with float32 logits), one
``run_standard_evaluation`` over the whole batch, its seed fixed, its prints and log lines kept
out of the way, the global RNG left as it was; then the model's logits and margins at its points,
as an :class:`.objective.AttackResult`, so that AutoAttack's points go through the same records
as PGD's.

AutoAttack is unweighted: it stops at the first point that is misclassified, and for an example it
cannot break it returns x itself (as it does for a clean error). Its margins are therefore those
of a misclassified point or of the clean input, which is what A_sa counts under AutoAttack.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from wmrbench.attacks.objective import Alpha, AttackResult, attack_mode, autocast, margin, predict, upcast
from wmrbench.attacks.registry import register_attack
from wmrbench.config import AttackConfig, Norm, Precision, parse_enum
from wmrbench.errors import WmrbenchError

VERSIONS = ("standard", "plus", "rand")
_THEIR_NORM = {Norm.LINF: "Linf", Norm.L2: "L2"}
# pyautoattack logs its progress and checks on this logger; wmrbench's own child logger takes its
# place, so that a caller configures both at once.
logger = logging.getLogger("wmrbench.attacks.autoattack")


class _Logits(nn.Module):
    """The model at ``precision``, with float32 logits (pyautoattack calls ``model(x)``)."""

    def __init__(self, model: nn.Module, precision: Precision) -> None:
        super().__init__()
        self.model, self.precision = model, precision

    def forward(self, x: Tensor) -> Tensor:
        with autocast(x.device.type, self.precision):
            return upcast(self.model(x))


def _refuse_weights(alpha: Alpha) -> None:
    if alpha is None:
        return
    zero = bool(torch.all(alpha == 0)) if isinstance(alpha, Tensor) else alpha == 0
    if not zero:
        raise WmrbenchError("autoattack is unweighted: it takes no alpha (use apgd-ce or pgd for A_tr)")


@contextlib.contextmanager
def _quiet(verbose: bool, device: torch.device) -> Iterator[None]:
    """pyautoattack reseeds the global RNG (every attack calls ``torch.manual_seed``) and prints
    when verbose: fork the RNG, and capture stdout unless ``verbose``."""
    devices = [device] if device.type == "cuda" else []
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with torch.random.fork_rng(devices=devices), sink:
        yield


def _make(model: nn.Module, attack: AttackConfig, version: str, seed: int, verbose: bool, device: torch.device):
    from pyautoattack import AutoAttack

    runner = AutoAttack(model, norm=_THEIR_NORM[attack.norm], eps=attack.eps, version=version,
                        seed=seed, device=device)
    runner.verbose = verbose  # its own progress lines (logged at debug level)
    # Its APGD attacks were handed its logger at construction: swap it everywhere.
    for part in (runner, runner.apgd, runner.apgd_targeted):
        part.logger = logger
    return runner


@register_attack("autoattack", "AutoAttack (standard, plus or rand) through pyautoattack; unweighted")
def autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: AttackConfig,
    *,
    alpha: Alpha = None,
    version: str = "standard",
    seed: int = 0,
    precision: Precision | str = Precision.FP32,
    verbose: bool = False,
    index: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AttackResult:
    """AutoAttack's ``version`` (``"standard"``, ``"plus"`` or ``"rand"``) at ``attack.eps`` in
    ``attack.norm`` (L-infinity or L2) on a model taking [0, 1] inputs.

    Only eps and norm are read from ``attack``: AutoAttack fixes its own iterations, restarts,
    starts and step sizes. ``alpha`` must be None or 0 (a weight raises WmrbenchError).
    Deterministic given ``seed`` and the batch: pyautoattack draws every start from the global
    RNG seeded with ``seed``, so, unlike PGD's keyed starts, an example's result depends on the
    batch it is attacked in (``index`` and ``generator`` are accepted for a uniform call and
    unused). The global RNG is restored afterwards. ``verbose`` lets its prints through.
    """
    _refuse_weights(alpha)
    if version not in VERSIONS:
        raise WmrbenchError(f"unknown AutoAttack version {version!r}; choose one of: {', '.join(VERSIONS)}")
    precision = parse_enum(Precision, precision, "precision")
    x = x.detach()
    with attack_mode(model), _quiet(verbose, x.device):
        runner = _make(_Logits(model, precision), attack, version, seed, verbose, x.device)
        x_adv, _ = runner.run_standard_evaluation(x, y, batch_size=max(len(y), 1))
    logits = predict(model, x_adv, precision)
    return AttackResult(x_adv.detach(), logits, margin(logits, y))
