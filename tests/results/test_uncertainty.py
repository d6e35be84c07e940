"""Intervals, effective sample sizes and paired tests (wmrbench.results.uncertainty), on synthetic records
with known population values, and the summary's schema 2 (old summaries still read)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wmrbench.results.metrics import compute_metrics, weighted_accuracy
from wmrbench.results.records import SCHEMA_VERSION, Summary, read_summary, write_records, write_summary
from wmrbench.results.uncertainty import (
    BootstrapConfig,
    few_examples_warnings,
    mcnemar_exact,
    n_eff,
    paired,
    paired_against,
    same_examples,
    uncertainty,
    with_uncertainty,
)

POPULATION = 200_000


def population(seed: int = 2026) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed large population shaped like a robust MNIST model's records: 95% correct under
    attack, correct margins piled up near 1, errors spread over negative margins; and a second,
    stronger attack on the same images (margins lower, 3% more errors) for paired tests."""
    rng = np.random.default_rng(seed)
    correct = rng.random(POPULATION) < 0.95
    margin = np.where(correct, rng.beta(5, 1.2, POPULATION), -rng.beta(2, 2, POPULATION))
    margin_b = np.where(rng.random(POPULATION) < 0.03, -np.abs(margin), margin - rng.uniform(0, 0.15, POPULATION))
    margin_b = np.clip(margin_b, -1, 1)
    return correct, margin, margin_b > 0, margin_b


def records(correct: np.ndarray, margin: np.ndarray, index: np.ndarray | None = None) -> pd.DataFrame:
    n = len(correct)
    clean = np.arange(n) % 50 != 7  # 2% of the clean images wrong, as a robust MNIST model's
    return pd.DataFrame({
        "index": np.arange(n) if index is None else index, "label": np.zeros(n, dtype=int),
        "clean_correct": clean, "clean_margin": np.where(clean, 1.0, -0.5), "pgd_correct": correct, "pgd_margin": margin,
    })


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_sa_interval_covers_the_population_value_in_92_to_98_percent_of_samples() -> None:
    """400 samples of 500 from the fixed population; each sample's 95% interval of A_sa(2) and
    of the paired difference A_sa(2) - B_sa(2) either covers the population value or not."""
    correct, margin, correct_b, margin_b = population()
    truth = weighted_accuracy(correct, margin, 2.0)
    truth_diff = truth - weighted_accuracy(correct_b, margin_b, 2.0)
    rng = np.random.default_rng(7)
    covered = covered_diff = 0
    for k in range(400):
        idx = rng.integers(0, POPULATION, 500)
        a, b = records(correct[idx], margin[idx]), records(correct_b[idx], margin_b[idx])
        cfg = BootstrapConfig(resamples=1000, seed=k)
        lo, hi = uncertainty(a, [2.0], cfg).interval("A_sa", 2.0)
        covered += lo <= truth <= hi
        (d,) = [d for d in paired(a, b, [2.0], cfg) if d.metric == "A_sa"]
        covered_diff += d.lo <= truth_diff <= d.hi
    assert 0.92 <= covered / 400 <= 0.98, covered / 400
    assert 0.92 <= covered_diff / 400 <= 0.98, covered_diff / 400


def test_widths_shrink_as_one_over_the_square_root_of_n_eff() -> None:
    correct, margin, _, _ = population()
    rng = np.random.default_rng(3)
    scaled = {}
    for n in (250, 1000, 4000):
        widths, effs = [], []
        for k in range(8):
            idx = rng.integers(0, POPULATION, n)
            unc = uncertainty(records(correct[idx], margin[idx]), [2.0], BootstrapConfig(resamples=500, seed=k))
            lo, hi = unc.interval("A_sa", 2.0)
            widths.append(hi - lo)
            effs.append(unc.n_eff["A_sa"][2.0])
        scaled[n] = float(np.mean(widths) * math.sqrt(np.mean(effs)))
        assert np.mean(effs) < 0.4 * n  # alpha 2 concentrates the weights: n_eff well below n
    # width * sqrt(n_eff) stays about constant while n grows 16-fold (the width itself shrinks ~4x).
    assert max(scaled.values()) / min(scaled.values()) < 1.3, scaled


def test_alpha_zero_is_a_rob_and_n_eff_is_n() -> None:
    correct, margin, _, _ = population()
    recs = records(correct[:700], margin[:700])
    unc = uncertainty(recs, [0.0, 2.0])
    assert unc.interval("A_sa", 0.0) == unc.interval("A_rob")  # the same resamples, the same numbers
    assert unc.n_eff["A_sa"][0.0] == pytest.approx(700)
    assert unc.n_eff["A_sa"][2.0] < 700
    assert unc.n_eff["A_sa"][2.0] == pytest.approx(n_eff(recs["pgd_margin"].to_numpy(), 2.0), abs=1e-3)


def test_n_eff_is_kish_and_survives_huge_alphas() -> None:
    margin = np.array([-0.5, 0.1, 0.9, 1.0])
    s = np.exp(-1.5 * margin)
    assert n_eff(margin, 1.5) == pytest.approx(s.sum() ** 2 / (s**2).sum())
    assert n_eff(margin, 5000.0) == pytest.approx(1.0)  # exp(2500) would overflow without the shift
    unc = uncertainty(records(margin > 0, margin), [5000.0])
    assert all(math.isfinite(v) for v in unc.interval("A_sa", 5000.0))


def test_intervals_are_seeded_and_hold_the_point_estimate() -> None:
    correct, margin, _, _ = population()
    recs = records(correct[:500], margin[:500])
    a, b = uncertainty(recs, [1.0, 2.0]), uncertainty(recs, [1.0, 2.0])
    assert a == b
    assert uncertainty(recs, [1.0, 2.0], BootstrapConfig(seed=1)) != a
    metrics = compute_metrics(recs, [1.0, 2.0])
    for key in (1.0, 2.0):
        lo, hi = a.interval("A_sa", key)
        assert lo <= metrics.A_sa[key] <= hi
    assert (a.method, a.level, a.resamples, a.seed) == ("percentile bootstrap over examples", 0.95, 2000, 0)


def test_few_examples_warning_names_the_metric_and_alpha() -> None:
    correct, margin, _, _ = population()
    unc = uncertainty(records(correct[:500], margin[:500]), [1.0, 2.0])
    lines = few_examples_warnings(unc)
    expected = round(unc.n_eff["A_sa"][2.0])
    assert f"A_sa at alpha 2 rests on about {expected} examples; use more test examples" in lines
    assert few_examples_warnings(unc, threshold=1) == []


def test_mcnemar_exact_binomial_tail() -> None:
    a = np.array([True] * 10 + [False] * 2 + [True] * 30)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30)
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (10, 2)
    assert p == pytest.approx(float(2 * Fraction(1 + 12 + 66, 2**12)))  # 2 P(X <= 2), X ~ Bin(12, 1/2)
    assert mcnemar_exact(a, a)[2] == 1.0
    # Thousands of discordant pairs: exact integers, no overflow, a tiny but positive p.
    big_a = np.r_[np.ones(3000, bool), np.zeros(2000, bool)]
    p_big = mcnemar_exact(big_a, ~big_a)[2]
    assert 0 < p_big < 1e-40


def test_paired_difference_of_identical_records_is_exactly_zero() -> None:
    correct, margin, correct_b, margin_b = population()
    a = records(correct[:500], margin[:500])
    same = paired(a, a.copy(), [2.0])
    assert all(d.difference == d.lo == d.hi == 0 and d.p_value == 1.0 for d in same)
    b = records(correct_b[:500], margin_b[:500])
    diffs = {d.label: d for d in paired(a, b, [2.0])}
    assert diffs["A_rob"].mcnemar_p is not None and diffs["A_sa(2)"].mcnemar_p is None
    d = diffs["A_sa(2)"]
    assert d.lo <= d.difference <= d.hi and d.difference == pytest.approx(d.a - d.b)


def test_paired_against_one_reference_gives_exactly_the_per_pair_numbers() -> None:
    # 3,000 examples: two chunks of resamples; alpha 900 makes steep columns (the per-resample
    # shift); one result has weighted-attack columns and the reference has not, so its A_tr drops.
    correct, margin, correct_b, margin_b = population()
    n = 3000
    reference = records(correct_b[:n], margin_b[:n])
    others = [records(correct[i * n:(i + 1) * n], margin[i * n:(i + 1) * n]) for i in range(3)]
    others[1] = others[1].assign(**{"tr_correct@2": correct_b[n:2 * n], "tr_margin@2": margin_b[n:2 * n] - 0.01})
    alphas = [[1.0, 2.0], [2.0], [0.5, 900.0]]
    config = BootstrapConfig(resamples=2000, seed=3)
    batched = paired_against(reference, others, alphas, config)
    each = [paired(o, reference, a, config) for o, a in zip(others, alphas, strict=True)]
    assert batched == each  # every field of every Difference, bit for bit
    assert [d.label for d in batched[2]][-2:] == ["A_sa(900)", "A_wc(900)"]
    assert paired_against(reference, [], [], config) == []


def test_same_examples_names_what_differs() -> None:
    a = records(np.ones(5, bool), np.ones(5))
    assert same_examples(a, a.copy()) is None
    assert same_examples(a, a.iloc[:4]) == "5 examples against 4"
    assert same_examples(a, a.assign(index=[0, 1, 2, 9, 4])) == "row 3 holds example 3 against 9"
    assert "label" in same_examples(a, a.assign(label=[0, 0, 7, 0, 0]))


def _summary_json(tmp_path: Path, recs: pd.DataFrame) -> dict:
    from wmrbench.core.config import DatasetName
    from wmrbench.core.presets import eval_config
    from wmrbench.results.records import ModelInfo

    cfg = eval_config(DatasetName.DIGITS, "r", alpha_test=(1.0, 2.0), device="cpu")
    summary = Summary(run="r", model=ModelInfo(name="r", source="checkpoint"), config=cfg,
                      metrics=compute_metrics(recs, [1.0, 2.0]), seconds=1.0, processes=1, versions={},
                      uncertainty=uncertainty(recs, [1.0, 2.0]))
    write_records(tmp_path / "r" / "records.csv", recs)
    write_summary(tmp_path / "r" / "summary.json", summary)
    return json.loads((tmp_path / "r" / "summary.json").read_text())


def test_schema_2_round_trips_and_a_v1_summary_gets_its_intervals_from_its_records(tmp_path: Path) -> None:
    correct, margin, _, _ = population()
    recs = records(correct[:300], margin[:300])
    obj = _summary_json(tmp_path, recs)
    assert obj["schema"] == SCHEMA_VERSION == 2
    assert obj["uncertainty"]["method"] == "percentile bootstrap over examples" and obj["uncertainty"]["resamples"] == 2000
    assert len(obj["uncertainty"]["intervals"]["A_sa"]["2"]) == 2 and obj["uncertainty"]["n_eff"]["A_sa"]["2"] < 300
    summary = read_summary(tmp_path / "r" / "summary.json")
    assert summary.uncertainty == uncertainty(recs, [1.0, 2.0])
    # The same result as schema 1 wrote it: no schema field, no intervals.
    del obj["schema"], obj["uncertainty"]
    (tmp_path / "r" / "summary.json").write_text(json.dumps(obj))
    old = read_summary(tmp_path / "r" / "summary.json")
    assert old.schema == 1 and old.uncertainty is None
    assert with_uncertainty(old, tmp_path / "r").uncertainty == summary.uncertainty
    assert with_uncertainty(old, tmp_path / "nowhere").uncertainty is None  # no records: nothing invented


def test_bad_uncertainty_objects_are_refused(tmp_path: Path) -> None:
    from wmrbench.core.errors import WmrbenchError

    correct, margin, _, _ = population()
    obj = _summary_json(tmp_path, records(correct[:100], margin[:100]))
    obj["uncertainty"]["intervals"]["A_rob"] = [90.0]
    (tmp_path / "r" / "summary.json").write_text(json.dumps(obj))
    with pytest.raises(WmrbenchError, match="A_rob is not a"):
        read_summary(tmp_path / "r" / "summary.json", check_records=False)


@pytest.mark.parametrize(("args", "words"), [(("--resamples", "0"), "--resamples must be an integer >= 1"),
                                             (("--seed", "-1"), "--seed must be an integer in 0..")])
def test_compare_refuses_bad_bootstrap_options_in_one_line(tmp_path: Path, args: tuple[str, str], words: str) -> None:
    from tests.conftest import assert_one_line_error, invoke

    correct, margin, _, _ = population()
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        write_records(tmp_path / run / "records.csv", records(correct[:50], margin[:50]))
    out = invoke("compare", tmp_path / "a", tmp_path / "b", *args)
    assert_one_line_error(out, words)
    assert invoke("compare", tmp_path / "a", tmp_path / "b").exit_code == 0  # records alone are enough


def test_wilson_matches_the_closed_form_and_never_collapses() -> None:
    from wmrbench.results.uncertainty import wilson

    assert wilson(1.0, 1) == pytest.approx((20.654931, 100.0), abs=1e-5)  # z = 1.959964
    assert wilson(0.0, 1) == pytest.approx((0.0, 79.345069), abs=1e-5)
    assert wilson(0.5, 100) == pytest.approx((40.383153, 59.616847), abs=1e-5)
    lo, hi = wilson(1.0, 200)
    assert 98.0 < lo < 98.2 and hi == 100.0


@pytest.mark.parametrize(("n", "right"), [(1, True), (1, False), (200, True)])
def test_an_interval_never_collapses_to_a_point(n: int, right: bool) -> None:
    """0.00 [0.00, 0.00] on one image, or 100.00 +- 0.0 on 200, read as certainty; the bootstrap
    gives [p, p] there, so the Wilson interval stands in and the method and a warning say so."""
    correct = np.full(n, right)
    margin = np.where(correct, 0.6, -0.4)
    unc = uncertainty(records(correct, margin).assign(clean_correct=correct, clean_margin=margin), alphas=[2.0])
    for metric in ("A_nat", "A_rob"):
        lo, hi = unc.interval(metric)
        assert hi - lo > 1.0, (metric, lo, hi)
    lo, hi = unc.interval("A_sa", 2.0)
    assert hi - lo > 1.0
    assert "Wilson score interval where every resample was alike: A_nat, A_rob, A_sa@2" in unc.method
    assert any("every example alike" in line for line in few_examples_warnings(unc))


def test_an_interval_of_a_varied_sample_stays_the_bootstraps() -> None:
    correct, margin, _, _ = population()
    unc = uncertainty(records(correct[:300], margin[:300]), alphas=[1.0])
    assert unc.method == "percentile bootstrap over examples"
    assert not any("alike" in line for line in few_examples_warnings(unc))
