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

Randomness: each of pyautoattack's attacks reseeds the global RNG with ``seed`` when it starts
(APGD-CE, APGD-T, FAB-T and Square call ``torch.manual_seed`` in ``perturb``), and this adapter
builds a fresh runner per call and restores the global RNG afterwards. So a call's result
depends only on (seed, the batch's examples), never on the calls before it: a batch attacked
again after a resume, or by another process, gives the same points. (Every batch starts from the
same stream, as in pyautoattack's own batched ``run_standard_evaluation``; wmrbench keeps that
rather than deriving a seed per batch, which would change every AutoAttack number so far.)

Progress: ``stage`` (a callable) is told the name of each of pyautoattack's attacks as it starts
(``apgd-ce``, ``apgd-t``, ``fab-t``, ``square``; ``apgd-dlr`` and ``fab`` in the other versions),
so that a progress bar can show it; pyautoattack's own progress lines go to this module's
logger at debug level (``verbose=True``), its prints to stdout only when ``verbose``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from wmrbench.attacks.objective import Alpha, AttackResult, attack_mode, autocast, margin, predict, upcast
from wmrbench.attacks.registry import register_attack
from wmrbench.core.attack_config import AttackConfig, Norm, Precision
from wmrbench.core.checks import parse_enum
from wmrbench.core.errors import WmrbenchError

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


def _announce(part: Any, name: Callable[[], str], stage: Callable[[str], None]) -> None:
    """Call ``stage(name())`` whenever ``part.perturb`` starts (pyautoattack calls it once per attack
    on the examples still standing); the attack itself is untouched."""
    perturb = part.perturb

    def announced(*args: Any, **kwargs: Any) -> Any:
        stage(name())
        return perturb(*args, **kwargs)

    part.perturb = announced


def _make(model: nn.Module, attack: AttackConfig, version: str, seed: int, verbose: bool, device: torch.device,
          stage: Callable[[str], None] | None = None):
    from pyautoattack import AutoAttack

    runner = AutoAttack(model, norm=_THEIR_NORM[attack.norm], eps=attack.eps, version=version,
                        seed=seed, device=device)
    runner.verbose = verbose  # its own progress lines (logged at debug level)
    # Its APGD attacks were handed its logger at construction: swap it everywhere.
    for part in (runner, runner.apgd, runner.apgd_targeted):
        part.logger = logger
    if stage is not None:
        # One object per kind of attack; which variant runs is set on it just before the call.
        _announce(runner.apgd, lambda: f"apgd-{runner.apgd.loss}", stage)
        _announce(runner.apgd_targeted, lambda: "apgd-t", stage)
        _announce(runner.fab, lambda: "fab-t" if runner.fab.targeted else "fab", stage)
        _announce(runner.square, lambda: "square", stage)
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
    stage: Callable[[str], None] | None = None,
) -> AttackResult:
    """AutoAttack's ``version`` (``"standard"``, ``"plus"`` or ``"rand"``) at ``attack.eps`` in
    ``attack.norm`` (L-infinity or L2) on a model taking [0, 1] inputs.

    Only eps and norm are read from ``attack``: AutoAttack fixes its own iterations, restarts,
    starts and step sizes (and chooses its own points: ``restart_rule`` does not apply).
    ``alpha`` must be None or 0 (a weight raises WmrbenchError).
    Deterministic given ``seed`` and the batch, and independent of earlier calls: pyautoattack
    draws every start from the global RNG, reseeded with ``seed`` by each of its attacks, so,
    unlike PGD's keyed starts, an example's result depends on the batch it is attacked in
    (``index`` and ``generator`` are accepted for a uniform call and unused). The global RNG is
    restored afterwards. ``verbose`` lets its prints through; ``stage`` is told the name of each
    of its attacks as it starts.
    """
    _refuse_weights(alpha)
    if version not in VERSIONS:
        raise WmrbenchError(f"unknown AutoAttack version {version!r}; choose one of: {', '.join(VERSIONS)}")
    precision = parse_enum(Precision, precision, "precision")
    x = x.detach()
    with attack_mode(model), _quiet(verbose, x.device):
        runner = _make(_Logits(model, precision), attack, version, seed, verbose, x.device, stage)
        x_adv, _ = runner.run_standard_evaluation(x, y, batch_size=max(len(y), 1))
    logits = predict(model, x_adv, precision)
    return AttackResult(x_adv.detach(), logits, margin(logits, y))
