"""The CLI's given options: named from the configs, never a hand-kept copy, and a plain mapping
of the settings given, which the library applies with ``with_options``."""

from __future__ import annotations

import dataclasses

import pytest
from typer.main import get_command

from wmrbench.core.attack_config import AttackConfig, AttackMethod
from wmrbench.cli import options as o
from wmrbench.cli.app import app
from wmrbench.core.config import EvalConfig, TrainConfig, with_options
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import eval_config


def _flat(cls: type) -> set[str]:
    own = {f.name for f in dataclasses.fields(cls)} - {"attack"}
    return own | {f.name for f in dataclasses.fields(AttackConfig)}


def test_the_settings_lists_hold_every_setting_of_their_config() -> None:
    assert set(o.EVAL_SETTINGS) == _flat(EvalConfig) - {"dataset", "run"}
    assert set(o.TRAIN_SETTINGS) == _flat(TrainConfig) - {"dataset", "defense"}


def test_every_option_a_command_takes_for_a_setting_reaches_its_config() -> None:
    """A command parameter named like a setting goes into the options object by name: none is
    dropped on the way (a new config field needs only its parameter)."""
    commands = get_command(app).commands
    for command, names, elsewhere in (("evaluate", o.EVAL_SETTINGS, {"dataset", "run", "defense", "alpha_train"}),
                                      ("attack", o.EVAL_SETTINGS, {"dataset", "run"}),
                                      ("train", o.TRAIN_SETTINGS, {"dataset", "defense"})):
        params = {p.name for p in commands[command].params}
        settings = _flat(EvalConfig if names is o.EVAL_SETTINGS else TrainConfig)
        missing = (params & settings) - set(names) - elsewhere
        assert not missing, (command, missing)


def test_the_options_are_the_mapping_of_the_settings_given() -> None:
    given = o.options_from(o.EVAL_SETTINGS, {"steps": 3, "alpha_test": "1,2", "method": "apgd-ce", "eps": None,
                                             "quiet": True})
    assert given == {"steps": 3, "alpha_test": (1.0, 2.0), "method": AttackMethod.APGD_CE}
    base = eval_config("digits", "r")
    applied = with_options(base, given)
    assert applied.attack.steps == 3 and applied.alpha_test == (1.0, 2.0) and applied.method is AttackMethod.APGD_CE
    assert applied == with_options(base, **given)
    assert with_options(base, {"steps": None}) == base  # None: not given


def test_seeds_make_their_first_the_seed_and_a_clash_is_one_line() -> None:
    assert o.options_from(o.EVAL_SETTINGS, {"seeds": "3,4", "seed": None})["seed"] == 3
    with pytest.raises(WmrbenchError, match="seed=0 and seeds=3,4"):
        o.options_from(o.EVAL_SETTINGS, {"seed": 0, "seeds": "3,4"})
