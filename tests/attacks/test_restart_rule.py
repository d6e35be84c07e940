"""``--restart-rule weighted|max-ce``: the authors' choice among restarts (the
highest cross-entropy at the end point, ties to the later restart) as an engine option.

Hand-made candidates pin the rule itself; the real robust MNIST model shows that max-ce keeps the
highest-CE restart of fresh and chained restarts, that the weighted rule's pick it carries along
is exactly a weighted run's, and, through the CLI, that one max-ce run records both rules' picks,
that A_rob does not move on these images and that A_sa is never lower under max-ce.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, assert_one_line_error, invoke, require_mnist
from tests.attacks.test_restarts import chained_start, reference_run
from wmrbench import attacks
from wmrbench.attacks import AttackResult, choose_max_ce
from wmrbench.core.attack_config import AttackConfig, RestartFrom, RestartRule
from wmrbench.core.config import DatasetName, eval_config_from_dict
from wmrbench.results.metrics import compute_metrics
from wmrbench.core.presets import eval_config
from wmrbench.results.records import WEIGHTED_RULE, read_summary, under_weighted_rule

# Weak on purpose (3 steps of 0.03 in a 0.3 ball): the start matters, so the restarts differ.
WEAK = AttackConfig(eps=0.3, step_size=0.03, steps=3, restarts=4)


# --- the rule on hand-made candidates ------------------------------------------------------------


def _candidate(logits, restart, value):
    logits = torch.tensor(logits, dtype=torch.float32)
    y = torch.zeros(len(logits), dtype=torch.int64)
    n = len(logits)
    return AttackResult(torch.full((n, 1, 2, 2), value), logits, attacks.margin(logits, y), torch.full((n,), restart)), y


def test_max_ce_keeps_the_higher_cross_entropy_and_ties_go_to_the_later_restart():
    # Label 0 everywhere. Rows: (1) new has the higher CE; (2) best has; (3) an exact tie;
    # (4) a correct candidate (p_y ~ 0.33 beside classes spread out) has the higher CE than a
    # misclassified one (p_y ~ 0.42 beside one class at ~0.57): max-ce keeps the correct one.
    best, y = _candidate([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.3, -9.0]], 0, 1.0)
    new, _ = _candidate([[0.5, 0.0, 0.0], [3.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, -0.01, -0.01]], 1, 2.0)
    chosen = choose_max_ce(best, new, y)
    assert chosen.restart.tolist() == [1, 0, 1, 1]
    assert chosen.x_adv[:, 0, 0, 0].tolist() == [2.0, 1.0, 2.0, 2.0]
    ce = [F.cross_entropy(c.logits, y, reduction="none") for c in (best, new)]
    assert torch.equal(F.cross_entropy(chosen.logits, y, reduction="none"), torch.maximum(*ce))
    # Row 4: the weighted rule keeps the misclassified point, max-ce the correct one.
    assert best.logits[3].argmax() != 0 and new.logits[3].argmax() == 0
    assert attacks.choose_among(best, new, y).restart[3] == 0 and chosen.restart[3] == 1
    assert torch.equal(chosen.margin, torch.where(chosen.restart == 1, new.margin, best.margin))


def test_the_rule_is_a_setting_with_one_name():
    assert AttackConfig(0.3, 0.01, 1).restart_rule is RestartRule.WEIGHTED
    assert AttackConfig(0.3, 0.01, 1, restart_rule="max-ce").restart_rule is RestartRule.MAX_CE
    assert eval_config("mnist", "r", "paper").attack.restart_rule is RestartRule.MAX_CE
    assert eval_config("mnist", "r").attack.restart_rule is RestartRule.WEIGHTED
    assert eval_config("mnist", "r", "paper", restart_rule="weighted").attack.restart_rule is RestartRule.WEIGHTED
    # A result written before the field existed reads as the weighted rule.
    old = {"dataset": "mnist", "attack": {"eps": 0.3, "step_size": 0.01, "steps": 40, "restarts": 10}, "alpha_test": [1],
           "n_examples": 10, "batch_size": 8, "seed": 0, "data_dir": "d", "device": "cpu", "precision": "fp32",
           "results_dir": "r", "run": "old"}
    assert eval_config_from_dict(old).attack.restart_rule is RestartRule.WEIGHTED


# --- the engine on the real MNIST model ----------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    require_mnist()
    from wmrbench.data import load_split
    from wmrbench.models.checkpoint import load_model_from_checkpoint

    model = load_model_from_checkpoint(MNIST_CHECKPOINT, "smallcnn", 10, 1).eval()
    data = load_split(DatasetName.MNIST, str(MNIST_DIR), train=False)
    index = torch.arange(120)
    return model, index, data.images(index), data.y[index]


@pytest.mark.slow  # 5 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("restart_from", [RestartFrom.START, RestartFrom.PREVIOUS])
def test_max_ce_keeps_each_examples_highest_cross_entropy_restart(mnist, restart_from):
    model, index, x, y = mnist
    attack = AttackConfig(WEAK.eps, WEAK.step_size, WEAK.steps, restarts=WEAK.restarts, restart_from=restart_from,
                          restart_rule="max-ce")
    got = attacks.pgd(model, x, y, attack, index=index)
    # Every restart's end point, written out independently of the engine (tests/attacks/test_restarts.py).
    runs, end = [], x
    for r in range(attack.restarts):
        if restart_from is RestartFrom.PREVIOUS:
            x_start = chained_start(x, end, attack.eps, index, 0, r)
        else:
            x_start = attacks.start_point(x, attack.eps, attack.start, r, index=index, seed=0)
        runs.append(reference_run(model, x, y, x_start, attack))
        end = runs[-1].x_adv
    ce = torch.stack([F.cross_entropy(run.logits, y, reduction="none") for run in runs])  # (restarts, n)
    # The highest CE, the LAST restart among equal maxima.
    last_best = attack.restarts - 1 - ce.flip(0).argmax(0)
    assert torch.equal(got.restart, last_best)
    assert len(set(last_best.tolist())) == attack.restarts  # every restart wins somewhere: the test has teeth
    rows = torch.arange(len(y))
    assert torch.equal(got.x_adv, torch.stack([run.x_adv for run in runs])[last_best, rows])
    assert torch.equal(got.logits, torch.stack([run.logits for run in runs])[last_best, rows])
    # The weighted rule's pick among the same restarts is a weighted run's, bit for bit.
    weighted = attacks.pgd(model, x, y, AttackConfig(**{**attack.__dict__, "restart_rule": "weighted"}), index=index)
    pick = got.weighted_pick
    assert weighted.weighted_pick is None
    for name in ("x_adv", "logits", "margin", "restart"):
        assert torch.equal(getattr(pick, name), getattr(weighted, name)), name
    # The rules differ somewhere (else this test shows nothing) but agree on correctness here.
    assert not torch.equal(got.restart, weighted.restart)
    assert torch.equal(got.logits.argmax(1) == y, weighted.logits.argmax(1) == y)


@pytest.mark.slow  # 6 s measured on a loaded 2-core CPU (tests/README.md)
def test_alpha_zero_under_max_ce_is_plain_pgd_and_every_alpha_carries_its_weighted_pick(mnist):
    model, index, x, y = mnist
    attack = AttackConfig(WEAK.eps, WEAK.step_size, WEAK.steps, restarts=3, restart_rule="max-ce")
    plain = attacks.pgd(model, x, y, attack, index=index)
    k, n = 2, len(y)
    stacked = attacks.pgd(model, x.repeat(k, 1, 1, 1), y.repeat(k), attack, alpha=torch.tensor([0.0, 2.0]).repeat_interleave(n),
                          index=index.repeat(k))
    assert torch.equal(stacked.x_adv[:n], plain.x_adv) and torch.equal(stacked.restart[:n], plain.restart)
    assert torch.equal(stacked.weighted_pick.x_adv[:n], plain.weighted_pick.x_adv)


# --- through the CLI, on the real checkpoint -----------------------------------------------------


def _evaluate(tmp_path, run, *extra):
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--data-dir", MNIST_DIR, "--n-examples", 64, "--protocol", "paper", "--steps", 6, "--step-size", 0.05,
                 "--restarts", 3, "--alpha-test", "1,2", "--device", "cpu", "--results-dir", tmp_path, "--run", run, "--quiet", *extra)
    assert out.exit_code == 0, out.output
    return out, read_summary(tmp_path / run / "summary.json"), pd.read_csv(tmp_path / run / "records.csv")


@pytest.mark.slow  # two evaluations of 64 images, 3 restarts: ~60 s on a loaded 2-core CPU
def test_one_max_ce_run_records_both_rules_and_a_sa_is_never_lower(tmp_path):
    require_mnist()
    out, mce, mce_records = _evaluate(tmp_path, "mce")  # --protocol paper: max-ce by default
    assert mce.config.attack.restart_rule is RestartRule.MAX_CE
    assert "(max-ce rule)" in out.stdout
    _, weighted, weighted_records = _evaluate(tmp_path, "weighted", "--restart-rule", "weighted", "--restart-from", "start")
    assert weighted.config.attack.restart_rule is RestartRule.WEIGHTED
    assert not any(c.startswith(WEIGHTED_RULE) for c in weighted_records.columns)  # the default path adds nothing
    # The weighted rule's picks the max-ce run recorded are the weighted run's records exactly.
    as_weighted = under_weighted_rule(mce_records)
    pd.testing.assert_frame_equal(as_weighted[list(weighted_records.columns)], weighted_records)
    assert compute_metrics(as_weighted) == weighted.metrics
    # A_rob is the same on these images; A_sa (and A_tr) are never lower under max-ce, and are
    # higher somewhere (the weighted rule is the attacker's best for every alpha at once).
    assert mce.metrics.A_rob == weighted.metrics.A_rob
    gaps = []
    for table in ("A_sa", "A_tr"):
        for key, value in getattr(weighted.metrics, table).items():
            assert getattr(mce.metrics, table)[key] >= value - 1e-9
            gaps.append(getattr(mce.metrics, table)[key] - value)
    assert max(gaps) > 0
    assert (mce_records["pgd_restart"] != mce_records[WEIGHTED_RULE + "pgd_restart"]).any()
    # Every margin column, the weighted rule's included, is finite and recorded in float64.
    assert np.isfinite(mce_records[[c for c in mce_records.columns if "margin" in c]].to_numpy()).all()
    summary = json.loads((tmp_path / "mce" / "summary.json").read_text())
    assert summary["config"]["attack"]["restart_rule"] == "max-ce"


def test_an_unknown_rule_is_one_line(tmp_path):
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--restart-rule", "lowest", "--results-dir", tmp_path, "--quiet")
    assert_one_line_error(out, "restart-rule", "weighted, max-ce")
    assert not any(tmp_path.iterdir())


def test_the_paper_protocol_column_names_the_rule():
    from wmrbench.report.paper import protocol_differences

    row = {"Dataset": "mnist", "Attack": "PGD", "Norm": "Linf", "eps": "0.3", "Steps": 40, "Step size": 0.01,
           "Restarts": 10, "Restart rule": "weighted", "Examples": 10000}
    assert protocol_differences(row) == "differs: Restart rule weighted (paper max-ce)"
    assert protocol_differences({**row, "Restart rule": "max-ce"}) == "same"
    # One restart: nothing to choose among, so the rule is no difference.
    assert protocol_differences({**row, "Restarts": 1}) == "differs: Restarts 1 (paper 10)"


def test_apgd_chooses_among_its_restarts_by_the_same_rule(mnist):
    model, index, x, y = mnist
    index, x, y = index[:32], x[:32], y[:32]
    attack = AttackConfig(0.3, 0.01, 4, restarts=3, restart_rule="max-ce")
    got = attacks.get_attack("apgd-ce").run(model, x, y, attack, index=index)
    weighted = attacks.get_attack("apgd-ce").run(model, x, y, AttackConfig(0.3, 0.01, 4, restarts=3), index=index)
    assert torch.equal(got.weighted_pick.x_adv, weighted.x_adv) and torch.equal(got.weighted_pick.restart, weighted.restart)
    ce = F.cross_entropy(got.logits, y, reduction="none")
    assert torch.all(ce >= F.cross_entropy(weighted.logits, y, reduction="none"))  # the max-CE pick is never lower
