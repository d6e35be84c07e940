"""What a command's given options become: the settings the user gave explicitly, parsed to the
types of their config fields, which the library applies on top of its base config
(:func:`wmrbench.core.config.with_options`); and how the CLI names a setting in a message.

A command often cannot build its config before it knows the data set (a checkpoint records it)
or the saved config (resuming), so it hands the library only what was given: a plain mapping
from setting name to value, holding no entry for a setting left out. A command's parameters are
named exactly like the config's fields (one name per setting everywhere), and the names a command
hands over are the config's own (:func:`wmrbench.core.config.flat_settings`), never a hand-kept copy.
"""

from __future__ import annotations

import math
from typing import Any

import typer

from wmrbench.core.attack_config import AAVersion, AttackMethod, Norm, Precision, RestartFrom, RestartRule, Start
from wmrbench.core.checks import parse_enum
from wmrbench.core.config import (
    AttackMode,
    EvalConfig,
    PaddingMode,
    Protocol,
    TrainConfig,
    check_seeds,
    flat_settings,
    parse_alphas,
    parse_ints,
)
from wmrbench.core.errors import WmrbenchError

# Settings whose command-line option has another name than the field (``--attack`` reads better
# than ``--method``, and ``attack`` is the field of the attack's own settings).
_OPTION_NAMES = {"method": "attack", "factory": "model"}


def option_name(name: str) -> str:
    """How a setting is named on the command line: ``step_size`` -> ``--step-size``."""
    return name if name.startswith("--") else "--" + _OPTION_NAMES.get(name, name).replace("_", "-")


def flag_text(name: str, value: str | None) -> str:
    """A marked setting (:func:`wmrbench.core.errors.setting`) as the CLI names it: ``--alpha-test``,
    ``--alpha-test 2``; a boolean as its flag (``--no-verify-checksums``)."""
    option = option_name(name)
    if value in ("True", "False"):
        return option if value == "True" else "--no-" + option[2:]
    return option if value is None else f"{option} {value}"


# ``evaluate``, ``attack`` and ``audit``: every EvalConfig setting but the data set and the run,
# which the command resolves itself (a checkpoint records its data set; a run is named per model).
EVAL_SETTINGS = flat_settings(EvalConfig, exclude=("dataset", "run"))
# ``train``: every TrainConfig setting but the data set and the defense, which pick the preset.
TRAIN_SETTINGS = flat_settings(TrainConfig, exclude=("dataset", "defense"))


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


def options_from(settings: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    """The settings among ``settings`` that a command was given, from its parameters (pass
    ``locals()``), each parsed to its config field's type; ``None`` (not given) is left out.

    The command's other parameters (model source, --run, --quiet ...) are ignored here.
    ``--seeds 3,4`` without ``--seed`` makes 3 the result's seed; a ``--seed`` that is not the
    first of ``--seeds`` is refused in one line.
    """
    given = {name: _parsed(name, values[name]) for name in settings if name in values}
    given = {name: value for name, value in given.items() if value is not None}
    if given.get("seeds") and "seed" not in given:
        given["seed"] = given["seeds"][0]
    if "seeds" in given and "seed" in given:
        check_seeds(given["seeds"], given["seed"])
    return given


def note_precision(precision: Precision | None) -> None:
    """Say, before any work, that a bf16 evaluation does not give fp32's (reported) numbers."""
    if precision is Precision.BF16:
        typer.echo(
            "Note: --precision bf16 runs the attack in bf16 autocast, a weaker attack than fp32's "
            "(docs/results.md measures by how much); the result records bf16, and its numbers should not "
            "be compared with fp32 ones",
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
