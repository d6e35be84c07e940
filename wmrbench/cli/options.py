"""What a command's given options become: a typed options object the library applies on top of
its base config, and how the CLI names a setting in a message.

The options classes are derived from the config dataclasses (:func:`wmrbench.config.settings_class`):
a command's parameters are named exactly like the config's fields (one name per setting
everywhere), so a new config field becomes an option by adding its parameter, never by copying
a field list by hand.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import typer

from wmrbench.attack_config import AAVersion, AttackMethod, Norm, Precision, RestartFrom, RestartRule, Start
from wmrbench.checks import parse_enum
from wmrbench.config import (
    AttackMode,
    EvalConfig,
    GivenSettings,
    PaddingMode,
    Protocol,
    TrainConfig,
    check_seeds,
    parse_alphas,
    parse_ints,
    settings_class,
)
from wmrbench.errors import WmrbenchError

O = TypeVar("O", bound=GivenSettings)

# Settings whose command-line option has another name than the field (``--attack`` reads better
# than ``--method``, and ``attack`` is the field of the attack's own settings).
_OPTION_NAMES = {"method": "attack", "factory": "model"}


def option_name(name: str) -> str:
    """How a setting is named on the command line: ``step_size`` -> ``--step-size``."""
    return name if name.startswith("--") else "--" + _OPTION_NAMES.get(name, name).replace("_", "-")


def flag_text(name: str, value: str | None) -> str:
    """A marked setting (:func:`wmrbench.errors.setting`) as the CLI names it: ``--alpha-test``,
    ``--alpha-test 2``; a boolean as its flag (``--no-verify-checksums``)."""
    option = option_name(name)
    if value in ("True", "False"):
        return option if value == "True" else "--no-" + option[2:]
    return option if value is None else f"{option} {value}"


class _CommandOptions(GivenSettings):
    """What the CLI adds to given settings: ``--seeds 3,4`` makes 3 the result's seed."""

    def __post_init__(self) -> None:
        seeds, seed = getattr(self, "seeds", None), getattr(self, "seed", None)
        if seeds and seed is None:
            object.__setattr__(self, "seed", seeds[0])
            seed = seeds[0]
        if seeds is not None and seed is not None:
            check_seeds(seeds, seed)


# ``evaluate``, ``attack`` and ``audit``: every EvalConfig setting but the data set and the run,
# which the command resolves itself (a checkpoint records its data set; a run is named per model).
EvalOptions = settings_class("EvalOptions", EvalConfig, exclude=("dataset", "run"), base=_CommandOptions)
# ``train``: every TrainConfig setting but the data set and the defense, which pick the preset.
TrainOptions = settings_class("TrainOptions", TrainConfig, exclude=("dataset", "defense"), base=_CommandOptions)


# Options given as text whose config field is an Enum (messages name them as "aa-version", as before).
ENUM_OPTIONS = {
    "start": Start, "precision": Precision, "method": AttackMethod, "aa_version": AAVersion, "protocol": Protocol,
    "norm": Norm, "attack_mode": AttackMode, "padding_mode": PaddingMode, "restart_from": RestartFrom,
    "restart_rule": RestartRule,
}


def _parsed(name: str, value: Any) -> Any:
    """A raw option value in the type its config field takes (None stays "not given")."""
    if value is None:
        return None
    if name in ENUM_OPTIONS:
        return parse_enum(ENUM_OPTIONS[name], value, option_name(name)[2:])
    if name == "alpha_test":
        return parse_alphas(value)
    if name == "milestones":
        return parse_ints(value, name)
    if name == "seeds":
        return parse_ints(value, name)
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


def note_precision(options: GivenSettings) -> None:
    """Say, before any work, that a bf16 evaluation does not give fp32's (reported) numbers."""
    if options.precision is Precision.BF16:
        typer.echo(
            "Note: --precision bf16 runs the attack in bf16 autocast: a weaker attack than fp32's "
            "(on the MNIST TRADES model it overstated A_rob by 0.40 points (1,000 images, GPU) and A_tr(2) by 5.5 points (200 images, CPU)); the result records bf16, "
            "and its numbers should not be compared with fp32 ones",
            err=True,
        )


def sources_of(given: dict[str, Any], model_ids: list[str] | None, defense: str | None = None,
               alpha_train: float | None = None) -> list[Any]:
    """The models that a command's model options (:data:`wmrbench.cli.params.MODEL_SOURCE`) name."""
    from wmrbench.models import model_sources

    return model_sources(given["checkpoint"], given["arch"], model_ids, given["model"], given["threat_model"],
                         given["model_dir"], parse_floats(given["mean"], "--mean"), parse_floats(given["std"], "--std"),
                         defense, alpha_train)


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
