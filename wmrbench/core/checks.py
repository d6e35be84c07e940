"""The checks every configuration makes of a value a user gave: one line naming the setting
and what it takes, before any work.

Below both the attack engine (:mod:`wmrbench.core.attack_config`) and the training and evaluation
configs (:mod:`wmrbench.core.config`), so that each checks its settings the same way and the engine
imports nothing shaped for training or the CLI. Messages name settings with
:func:`wmrbench.core.errors.setting` (``step_size`` for a Python caller, ``--step-size`` on the CLI).
"""

from __future__ import annotations

import math
import numbers
from enum import Enum
from typing import Any, TypeVar

from wmrbench.core.errors import WmrbenchError, setting

E = TypeVar("E", bound=Enum)


def parse_enum(enum_type: type[E], value: str | E, option: str) -> E:
    """Turn a user's string into an Enum member, or fail with one line listing the choices."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in enum_type)
        raise WmrbenchError(f"unknown {option} {value!r}; choose one of: {choices}") from None


MAX_SEED = 2**63 - 1  # seeds are 63-bit: torch.Generator.manual_seed and numpy's SeedSequence take them


def _number(value: Any, name: str) -> float:
    """``value`` as a float, or one line: a bool, a string ("two"), None are not numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WmrbenchError(f"{setting(name)} must be a number; got {value!r}")
    return float(value)


def _integer(value: Any, name: str) -> int:
    """``value`` as an int, or one line (2.5, "3" and True are not integers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise WmrbenchError(f"{setting(name)} must be an integer; got {value!r}")
    return int(value)


def check_range(
    value: Any, name: str, low: float, high: float = math.inf, *, open_low: bool = False, open_high: bool = False,
    why: str = "",
) -> float:
    """A finite number in the interval, as a float, or one line naming the option and the range.

    NaN and infinities are refused everywhere: a NaN setting trains NaN weights, an infinite
    alpha turns every weight into 0 or inf, and neither fits in a JSON result.
    """
    number = _number(value, name)
    inside = math.isfinite(number) and (number > low if open_low else number >= low) and (
        number < high if open_high else number <= high
    )
    if not inside:
        if high == math.inf:
            interval = f"a finite number {'>' if open_low else '>='} {low:g}"
        else:
            interval = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise WmrbenchError(f"{setting(name)} must be {interval}{why}; got {value!r}")
    return number


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high], or one line naming the option and the range."""
    number = _integer(value, name)
    if number < low or (high is not None and number > high):
        interval = f">= {low}" if high is None else f"in {low}..{high}"
        raise WmrbenchError(f"{setting(name)} must be an integer {interval}; got {value!r}")
    return number


def check_eps(eps: float, name: str = "eps") -> float:
    return check_range(eps, name, 0.0, 1.0, why=" (inputs are images in [0, 1])")


def check_alpha(alpha: float, option: str = "alpha") -> float:
    return check_range(alpha, option, 0.0, why=" (0 is the uniform, unweighted case)")


def check_seed(seed: Any, name: str = "seed") -> int:
    return check_int(seed, name, 0, MAX_SEED)


def set_checked(cfg: Any, **values: Any) -> None:
    """Store checked (and normalised: 2 -> 2.0 for a float setting) values in a frozen config."""
    for name, value in values.items():
        object.__setattr__(cfg, name, value)
