"""Options shared by ``evaluate`` and ``attack``: one definition, one help text, one name each."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import typer


from wmrbench.config import (
    AAVersion,
    AttackMethod,
    AttackMode,
    EvalOptions,
    Norm,
    Options,
    PaddingMode,
    Precision,
    Protocol,
    RestartFrom,
    RestartRule,
    Start,
    parse_alphas,
    parse_enum,
    parse_ints,
)
from wmrbench.errors import WmrbenchError

O = TypeVar("O", bound=Options)

# Options given as text whose config field is an Enum: (Enum, the option's name in messages).
ENUM_OPTIONS = {
    "start": (Start, "start"), "precision": (Precision, "precision"), "method": (AttackMethod, "attack"),
    "aa_version": (AAVersion, "aa-version"), "protocol": (Protocol, "protocol"), "norm": (Norm, "norm"),
    "attack_mode": (AttackMode, "attack-mode"), "padding_mode": (PaddingMode, "padding-mode"),
    "restart_from": (RestartFrom, "restart-from"), "restart_rule": (RestartRule, "restart-rule"),
}


def _parsed(name: str, value: Any) -> Any:
    """A raw option value in the type its config field takes (None stays "not given")."""
    if value is None:
        return None
    if name in ENUM_OPTIONS:
        enum_type, option = ENUM_OPTIONS[name]
        return parse_enum(enum_type, value, option)
    if name == "alpha_test":
        return parse_alphas(value)
    if name == "milestones":
        return parse_ints(value, "--milestones")
    if name == "seeds":
        return parse_ints(value, "--seeds")
    if name == "download":
        return value or None  # a flag: absent means "not given", not "no"
    return value


def options_from(cls: type[O], values: dict[str, Any]) -> O:
    """The options object of a command, from its parameters (pass ``locals()``).

    A command's parameters are named exactly like the fields of its options dataclass (one name
    per setting everywhere), so the object is built by name; the command's other parameters
    (model source, --run, --quiet ...) are ignored here.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: _parsed(name, value) for name, value in values.items() if name in names})


def note_precision(options: EvalOptions) -> None:
    """Say, before any work, that a bf16 evaluation does not give fp32's (reported) numbers."""
    if options.precision is Precision.BF16:
        typer.echo(
            "Note: --precision bf16 runs the attack in bf16 autocast: a weaker attack than fp32's "
            "(on the MNIST TRADES model it overstated A_rob by 0.40 points (1,000 images, GPU) and A_tr(2) by 5.5 points (200 images, CPU)); the result records bf16, "
            "and its numbers should not be compared with fp32 ones",
            err=True,
        )


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """'0.5,0.25' -> (0.5, 0.25); None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise WmrbenchError(f"{option} takes comma-separated numbers, e.g. 0.4914,0.4822,0.4465; got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise WmrbenchError(f"{option} takes finite numbers; got {text!r}")
    return values
