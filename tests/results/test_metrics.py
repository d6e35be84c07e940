"""Metrics from per-example records, by hand and on a real evaluation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wmrbench.results.metrics import compute_metrics, normalized_weights, weighted_accuracy


def test_weighted_accuracy_by_hand():
    correct = np.array([1, 0, 1])
    margin = np.array([0.5, -0.2, 0.1])
    s = np.exp(-2.0 * margin)
    assert weighted_accuracy(correct, margin, 2.0) == pytest.approx(100 * (s[0] + s[2]) / s.sum())
    assert weighted_accuracy(correct, margin, 0.0) == 100.0 * (2 / 3)
    # A very sharp attacker puts all its mass on the lowest margin, here a robust error.
    assert weighted_accuracy(correct, margin, 1e4) == pytest.approx(0.0, abs=1e-9)
    assert math.isclose(normalized_weights(margin, 2.0).sum(), 1.0)


def test_alpha_zero_metrics_equal_a_rob_exactly():
    rng = np.random.default_rng(0)
    margin = rng.uniform(-1, 1, 1001)
    records = pd.DataFrame({
        "index": np.arange(1001), "label": 0, "clean_correct": 1,
        "pgd_correct": (margin > 0).astype(int), "pgd_margin": margin,
        "tr_correct@0": (margin > 0).astype(int), "tr_margin@0": margin,
    })
    m = compute_metrics(records, [0.0])
    assert m.A_sa[0.0] == m.A_tr[0.0] == m.A_rob
    assert m.alphas == [0.0] and m.n_examples == 1001


@pytest.mark.slow  # 10 s measured on a loaded 2-core CPU (tests/README.md)
def test_real_evaluation_invariants(mnist_model, mnist_test):
    """On the real robust MNIST model: A_sa(0) = A_tr(0) = A_rob exactly, and the ordering the
    paper expects, A_tr <= A_sa <= A_rob, with A_sa falling as alpha_test grows."""
    from wmrbench.core.attack_config import AttackConfig, Precision
    from wmrbench.core.config import DatasetName, EvalConfig
    from wmrbench.evaluation import evaluate_model

    cfg = EvalConfig(
        dataset=DatasetName.MNIST, attack=AttackConfig(eps=0.3, step_size=0.01, steps=20),
        alpha_test=(0.0, 1.0, 2.0), n_examples=200, batch_size=100, seed=0, data_dir="",
        device="cpu", precision=Precision.FP32, results_dir="", run="t",
    )
    records = evaluate_model(mnist_model, mnist_test.subset(200), cfg, show_progress=False)
    m = compute_metrics(records)
    assert m.A_sa[0.0] == m.A_tr[0.0] == m.A_rob
    assert m.A_nat >= m.A_rob
    assert m.A_rob > m.A_sa[1.0] > m.A_sa[2.0]
    assert m.A_tr[2.0] <= m.A_sa[2.0] + 1.0  # the weighted attack is the stronger one
    # Records recompute the metrics exactly after a CSV round trip.
    from wmrbench.results.records import read_records, write_records
    import tempfile, pathlib

    with tempfile.TemporaryDirectory() as tmp:
        path = write_records(pathlib.Path(tmp) / "records.csv", records)
        assert compute_metrics(read_records(path)) == m


@pytest.mark.slow  # 9 s measured on a loaded 2-core CPU (tests/README.md)
def test_worst_case_accuracy_is_at_most_every_attacks_weighted_accuracy(mnist_model, mnist_test) -> None:
    """A_wc (wmrbench's extension) takes per example the attacker's best point among all the
    run computed: at every alpha it is at most A_sa and A_tr, and at alpha 0 at most A_rob."""
    from wmrbench.evaluation import evaluate_model
    from wmrbench.core.presets import eval_config

    data = mnist_test.subset(150)
    cfg = eval_config("mnist", "wc", alpha_test=(0.0, 0.5, 1.0, 2.0, 5.0), steps=5, step_size=0.03, restarts=2,
                      device="cpu", batch_size=150)
    metrics = compute_metrics(evaluate_model(mnist_model, data, cfg, show_progress=False))
    for key, a_wc in metrics.A_wc.items():
        assert a_wc <= min(metrics.A_sa[key], metrics.A_tr[key]) + 1e-12, key
    assert metrics.A_wc[0.0] <= metrics.A_rob
    assert any(metrics.A_wc[k] < min(metrics.A_sa[k], metrics.A_tr[k]) for k in metrics.A_wc)  # it can bite


def test_worst_case_points_follow_the_rule() -> None:
    from wmrbench.results.metrics import worst_case_points

    records = pd.DataFrame({
        "clean_correct": [1, 1, 1], "clean_margin": [0.9, 0.9, 0.8],
        "pgd_correct": [1, 0, 1], "pgd_margin": [0.5, -0.2, 0.95],
        "tr_correct@2": [0, 0, 1], "tr_margin@2": [-0.1, -0.6, 0.3],
    })
    correct, margin = worst_case_points(records)
    assert correct.tolist() == [False, False, True]  # a misclassified point wherever there is one
    assert margin.tolist() == [-0.1, -0.6, 0.95]  # the lowest such margin; else the highest correct one
