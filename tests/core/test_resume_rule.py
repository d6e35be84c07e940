"""wmrbench.core.resume: the one rule by which training and evaluation resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from wmrbench.core import resume
from wmrbench.core.config import EvalConfig, TrainConfig
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation import partial
from wmrbench.core.presets import eval_config, train_config
from wmrbench.training import merge_resume


def test_the_resumable_settings_are_those_the_configs_mark() -> None:
    assert resume.resumable_settings(TrainConfig) >= {"run", "epochs", "device", "checkpoint_dir", "data_dir"}
    assert "lr" not in resume.resumable_settings(TrainConfig)
    assert resume.resumable_settings(EvalConfig) >= {"run", "device", "results_dir", "data_dir"}
    assert "seed" not in resume.resumable_settings(EvalConfig)


def test_only_resumable_settings_may_differ_and_the_rest_stay_saved() -> None:
    saved = train_config("digits", "trades", run="a", epochs=2)
    asked = resume.requested(saved, {"epochs": 5, "device": "cpu", "lr": 0.5}, run="b")
    assert resume.changed(saved, asked) == ["lr"]
    same_lr = dataclasses.replace(asked, lr=saved.lr)
    merged = resume.merged(saved, same_lr)
    assert (merged.run, merged.epochs, merged.device, merged.lr) == ("b", 5, "cpu", saved.lr)
    assert merge_resume(saved, same_lr) == merged  # training's resume is this rule


def test_evaluation_names_attack_settings_flat_by_the_same_rule() -> None:
    saved = eval_config("digits", "r", steps=10)
    asked = resume.requested(saved, {"steps": 5, "device": "cpu"}, results_dir="elsewhere")
    assert resume.changed(saved, asked) == ["steps"]  # by its flat name, not "attack"
    fine = resume.requested(saved, {"device": "cpu"}, results_dir="elsewhere")
    got = partial.resume_config(saved, fine, folder=Path("x"))
    assert (got.device, got.results_dir, got.attack) == ("cpu", "elsewhere", saved.attack)


def test_training_names_attack_settings_flat_and_by_their_python_names() -> None:
    saved = train_config("digits", "trades", run="a", epochs=2)
    asked = resume.requested(saved, {"steps": saved.attack.steps + 1})
    assert resume.changed(saved, asked) == ["steps"]  # not "attack", which names no setting one can give
    with pytest.raises(WmrbenchError) as raised:
        merge_resume(saved, asked)
    assert str(raised.value) == ("resume=True: run 'a' was trained with other settings (steps); "
                                 "drop those options or start a new run")
