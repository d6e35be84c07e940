"""wmrbench.studies.reproduce and wmrbench.studies.family without training: the runs each plans, the evaluation
each run gets, and how a trained checkpoint already on disk counts (a real digits checkpoint).
The reproductions themselves, trained and resumed, are tests/cli/test_reproduce.py and
tests/cli/test_defenses_cli.py (slow tier)."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import assert_one_line_error, invoke
from wmrbench.core.attack_config import AttackMethod
from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.errors import WmrbenchError
from wmrbench.studies.family import FamilyConfig
from wmrbench.studies.family import planned_runs as family_runs
from wmrbench.core.presets import DEFAULT_ALPHA_TEST, preset_for
from wmrbench.studies.planner import current_result, finished_epochs
from wmrbench.studies.reproduce import ReproduceConfig, plan, planned_runs

TABLE1_RUNS = ["table1-digits-pgd-a0", "table1-digits-pgd-a0.5", "table1-digits-trades-a0", "table1-digits-trades-a2"]


def test_table1_plans_the_four_runs_and_their_evaluations(tmp_path):
    cfg = ReproduceConfig(quick=True, epochs=2, n_examples=30, checkpoint_dir=str(tmp_path / "ck"),
                          results_dir=str(tmp_path / "res"))
    planned = plan(cfg)
    runs = planned.runs
    assert [r.run for r in runs] == TABLE1_RUNS
    assert [e.model for e in planned.evals] == list(runs) and [e.name for e in planned.evals] == TABLE1_RUNS
    for run, evaluation in zip(runs, planned.evals):
        assert run.dataset == DatasetName.DIGITS and run.epochs == 2 and run.seed == cfg.seed
        expected = preset_for(DatasetName.DIGITS, run.defense).alpha_train if not run.run.endswith("-a0") else 0.0
        assert run.alpha_train == expected
        assert evaluation.config.n_examples == 30 and evaluation.config.alpha_test == DEFAULT_ALPHA_TEST
        assert evaluation.folder == cfg.table_dir / run.run
    assert {r.attack.eps for r in runs} == {runs[0].attack.eps}  # one threat model for the table
    assert current_result(planned.evals[0]) == (None, "not evaluated yet")


def test_a_checkpoint_on_disk_counts_its_epochs_and_one_from_another_run_is_refused(tmp_path, digits_runs):
    ck = tmp_path / "ck"
    (ck / "table1-digits-trades-a0").mkdir(parents=True)
    shutil.copy(digits_runs["trades-a0"], ck / "table1-digits-trades-a0" / "last.pt")  # 2 epochs trained
    planned = {r.run: r for r in planned_runs(ReproduceConfig(quick=True, epochs=2, checkpoint_dir=str(ck)))}
    assert finished_epochs(planned["table1-digits-trades-a0"]) == 2
    assert finished_epochs(planned["table1-digits-pgd-a0"]) == 0
    shorter = {r.run: r for r in planned_runs(ReproduceConfig(quick=True, epochs=1, checkpoint_dir=str(ck)))}
    with pytest.raises(WmrbenchError, match="more than the 1 planned"):
        finished_epochs(shorter["table1-digits-trades-a0"])


def test_the_family_plans_seven_runs_on_one_attack_budget():
    cfg = FamilyConfig(quick=True)
    runs = family_runs(cfg)
    assert len(runs) == 7 and len({r.run for r in runs}) == 7
    assert [r.defense for r in runs[:5]] == [Defense.PGD, Defense.TRADES, Defense.MART, Defense.GAIRAT, Defense.MAIL_TRADES]
    assert [r.alpha_train > 0 for r in runs] == [False] * 5 + [True] * 2
    assert len({(r.attack.eps, r.attack.steps, r.attack.step_size, r.batch_size) for r in runs}) == 1
    assert cfg.examples(AttackMethod.PGD) == 200 and cfg.examples(AttackMethod.AUTOATTACK) == 100


@pytest.mark.parametrize("args", [("table1", "--epochs", "0"), ("family", "--attacks", "square")])
def test_bad_reproduce_options_are_one_line_before_any_work(args, tmp_path):
    out = invoke("reproduce", *args, "--quick", "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res")
    assert_one_line_error(out)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "res").exists()
