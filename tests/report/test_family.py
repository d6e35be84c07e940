"""wmrbench.report.family: the family's table (one row per model and alpha_test) and each reweighted
model's gains over its unweighted base, on real digits summaries (TRADES and TRADES+ours)."""

from __future__ import annotations

import pytest

from wmrbench.results.records import read_summary
from wmrbench.report.family import family_table, gains_table


def test_the_table_has_each_models_metrics_and_the_gains_are_their_differences(digits_results):
    base, ours = (read_summary(digits_results / run / "summary.json") for run in ("trades-a0", "trades-a2"))
    table = family_table([{"pgd": base}, {"pgd": ours}])
    alphas = list(base.metrics.alphas)
    assert list(table["Defense"]) == ["TRADES"] * len(alphas) + ["TRADES+ours"] * len(alphas)
    assert list(table["alpha_test"]) == alphas * 2
    first = table.iloc[len(alphas) - 1]  # the base model at its last alpha_test
    key = alphas[-1]  # a float: the gain table's keys are the alphas themselves
    assert first["A_rob PGD"] == base.metrics.A_rob and first["A_tr"] == base.metrics.A_tr[key]
    assert "A_rob AA" not in table  # no AutoAttack result was given

    intervals = {("TRADES+ours", key, "A_tr"): (-0.5, 0.5)}
    gains = gains_table(table, intervals)
    assert list(gains["vs"]) == ["TRADES"] * len(alphas)
    for (_, gain), alpha in zip(gains.iterrows(), alphas):
        k = alpha
        assert gain["A_sa gain"] == pytest.approx(ours.metrics.A_sa[k] - base.metrics.A_sa[k])
        assert gain["A_rob PGD gain"] == pytest.approx(ours.metrics.A_rob - base.metrics.A_rob)
    last = gains.iloc[-1]
    assert (last["A_tr gain_lo"], last["A_tr gain_hi"]) == (-0.5, 0.5)
