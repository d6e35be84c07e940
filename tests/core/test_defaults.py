"""One default per concept (alpha_train, beta, the attack budget) across every entry point.

Where a data set is named, its preset decides; where none is named, ``wmrbench.core.defaults`` does
(the paper's CIFAR-10 TRADES setting). These tests hold the one source equal to the presets,
every Python entry point's signature equal to the one source, the CLI's defaults equal to the
named data set's preset, and the table in docs/api.md equal to all of them.
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from tests.conftest import REPO
from wmrbench.training import losses
from wmrbench.core.attack_config import Norm
from wmrbench.attacks.wrappers import WeightedAPGD, WeightedPGD
from wmrbench.core.config import DatasetName, Defense, Protocol
from wmrbench.core.defaults import DEFAULTS, Budget, scaled_step_size
from wmrbench.evaluation.api import evaluate
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.core.presets import PRESETS, eval_attack, preset_for, train_config
from wmrbench.training.api import fit

TRAIN, EVAL = DEFAULTS.train_attack, DEFAULTS.eval_attack
LOSSES = ("pgd_at", "trades", "mart", "gairat", "mail_at", "mail_trades")


def _defaults(function) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_the_rule_is_the_papers_cifar10_trades_preset():
    preset = PRESETS[(DatasetName.CIFAR10, Defense.TRADES)]
    assert TRAIN == Budget(preset.eps, preset.train_step_size, preset.train_steps)
    assert DEFAULTS.beta == preset.beta == 5.0
    attack = eval_attack(DatasetName.CIFAR10, Protocol.DEFAULT, Norm.LINF)
    assert EVAL == Budget(attack.eps, attack.step_size, attack.steps) == Budget(0.031, 0.003, 20)
    assert DEFAULTS.alpha_train == 0.0  # omitted: the unweighted baseline (DESIGN section 1)


def test_every_python_entry_point_reads_the_one_source():
    pgd = _defaults(WeightedPGD.__init__)
    assert (pgd["eps"], pgd["step_size"], pgd["steps"], pgd["alpha"]) == (EVAL.eps, None, EVAL.steps, 0.0)
    apgd = _defaults(WeightedAPGD.__init__)
    assert (apgd["eps"], apgd["steps"]) == (EVAL.eps, DEFAULTS.apgd_steps)
    for name in LOSSES:
        own = _defaults(getattr(losses, name))
        assert (own["eps"], own["step_size"], own["steps"]) == (TRAIN.eps, None, TRAIN.steps), name
        assert own.get("beta", DEFAULTS.beta) == DEFAULTS.beta, name
        assert own.get("alpha", DEFAULTS.alpha_train) == DEFAULTS.alpha_train, name
    mine = _defaults(fit)
    assert (mine["eps"], mine["step_size"], mine["steps"]) == (TRAIN.eps, None, TRAIN.steps)
    assert (mine["beta"], mine["alpha_train"]) == (DEFAULTS.beta, DEFAULTS.alpha_train)
    ours = _defaults(evaluate)
    assert (ours["eps"], ours["step_size"], ours["steps"], ours["dataset"]) == (None, None, None, None)


def test_a_step_size_left_out_keeps_the_default_walks_reach():
    assert scaled_step_size(EVAL.eps, EVAL.steps, EVAL) == EVAL.step_size  # exactly, not approximately
    assert scaled_step_size(TRAIN.eps, TRAIN.steps, TRAIN) == TRAIN.step_size
    for eps, steps in ((0.3, 40), (0.1, 5), (8 / 255, 100)):
        step = scaled_step_size(eps, steps, EVAL)
        assert steps * step / eps == pytest.approx(EVAL.steps * EVAL.step_size / EVAL.eps)


def _digits(n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    bunch = load_digits()
    x = torch.tensor(bunch.images[:n], dtype=torch.float32).div(16.0).unsqueeze(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return model, x, torch.tensor(bunch.target[:n])


def test_what_runs_when_nothing_is_given_is_the_one_source(tmp_path):
    model, x, y = _digits()
    atk = WeightedPGD(model)
    assert (atk.attack.eps, atk.attack.step_size, atk.attack.steps) == (EVAL.eps, EVAL.step_size, EVAL.steps)
    with pytest.warns(UserWarning, match="CIFAR-10 budget"):  # digits are one-channel images
        got = evaluate(model, x, y, alpha_test=1.0, device="cpu").config.attack
    assert (got.eps, got.step_size, got.steps) == (EVAL.eps, EVAL.step_size, EVAL.steps)
    result = fit(model, (x, y), epochs=1, batch_size=16, device="cpu", checkpoint_dir=tmp_path, show_progress=False)
    cfg = read_checkpoint(result.last)["config"]
    assert (cfg["attack"]["eps"], cfg["attack"]["step_size"], cfg["attack"]["steps"]) == (TRAIN.eps, TRAIN.step_size, TRAIN.steps)
    assert (cfg["beta"], cfg["alpha_train"]) == (DEFAULTS.beta, DEFAULTS.alpha_train)


@pytest.mark.parametrize("dataset", [d for d in DatasetName])
def test_a_named_data_set_takes_its_preset_and_alpha_train_stays_zero(dataset):
    for defense in (Defense.TRADES, Defense.PGD):
        preset, cfg = preset_for(dataset, defense), train_config(dataset, defense)
        assert (cfg.attack.eps, cfg.attack.step_size, cfg.attack.steps) == (preset.eps, preset.train_step_size, preset.train_steps)
        assert cfg.beta == preset.beta
        assert cfg.alpha_train == DEFAULTS.alpha_train


def test_the_cli_gives_no_default_of_its_own():
    """Every command's --alpha-train, --beta and budget options default to "not given" (None):
    the data set's preset decides, and without --dataset the CLI names its default data set
    (digits, offline), whose preset then decides."""
    import typer

    from wmrbench.cli.app import app
    from wmrbench.core.presets import DEFAULT_DATASET

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("train", "evaluate", "attack"):
        given = {p.name: p.default for p in commands[name].params}
        for setting in ("dataset", "alpha_train", "beta", "eps", "step_size", "steps"):
            assert given.get(setting) is None, (name, setting, given.get(setting))
    cfg, preset = train_config(DEFAULT_DATASET), preset_for(DEFAULT_DATASET)
    assert (cfg.attack.eps, cfg.beta, cfg.alpha_train) == (preset.eps, preset.beta, DEFAULTS.alpha_train)


def test_docs_api_table_lists_the_same_defaults():
    """docs/api.md holds one table of defaults, and its numbers are the one source's."""
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert text.count("## Defaults") == 1
    section = text.split("## Defaults", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].strip("| "): [cell.strip() for cell in line.strip("|").split("|")[1:]]
            for line in section.splitlines() if line.startswith("| `")}
    pgd, fit_row, plain = rows["`WeightedPGD(model)` (evaluation attack)"], rows["`fit(model, data)`"], rows["`evaluate(model, data)`"]
    assert pgd[2:] == [f"{EVAL.eps:g}", f"{EVAL.step_size:g}", f"{EVAL.steps}"]
    assert plain[2:] == pgd[2:]
    assert fit_row == [f"{DEFAULTS.alpha_train:g}", f"{DEFAULTS.beta:g}", f"{TRAIN.eps:g}", f"{TRAIN.step_size:g}",
                       f"{TRAIN.steps}"]
    losses_row = rows["`losses.pgd_at`, `losses.trades`"]
    assert losses_row[2:] == fit_row[2:] and losses_row[1].startswith(f"{DEFAULTS.beta:g}")
    assert rows["`WeightedAPGD(model)`"][4].startswith(f"{DEFAULTS.apgd_steps}")
    assert rows["`wmrbench train --dataset D` (D default: `digits`)"][0] == f"{DEFAULTS.alpha_train:g}"
