"""``wmrbench demo``, README's main command: a bad option is one line before any training, and (slow tier)
the demo itself runs end to end and its claimed gain holds on paired examples."""

from __future__ import annotations

import pytest

from tests.conftest import assert_one_line_error, files_under, invoke


@pytest.mark.parametrize("args", [("--defense", "nope"), ("--alpha-test", "1,x"), ("--defense", "mart")])
def test_a_bad_demo_option_is_one_line_and_trains_nothing(args, tmp_path):
    out = invoke("demo", *args, "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res", "--quiet")
    assert_one_line_error(out)
    assert files_under(tmp_path) == set()


@pytest.mark.slow  # the README's main command as a user runs it: two 30-epoch digits runs, ~2 min of CPU
def test_the_demo_trains_evaluates_and_its_gain_holds_on_paired_examples(tmp_path):
    """README's command 1 end to end: both runs train, both results carry their intervals, and
    the demo's claim (TRADES+ours beats TRADES on A_sa(2) and A_tr(2), measured +20.7 and +19.5
    points with paired intervals excluding 0) holds as a paired comparison on the same images."""
    from wmrbench.results.comparison import compare
    from wmrbench.results.records import read_summary

    out = invoke("demo", "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res", "--quiet")
    assert out.exit_code == 0, out.output
    assert "A_sa" in out.output and "±" in out.output  # the paper's table, each number with its interval
    assert "One training run per model: each interval covers the test images only" in out.output
    results = {p.name: p for p in (tmp_path / "res").iterdir() if p.is_dir()}
    assert set(results) == {"demo-trades-a0", "demo-trades-a2"}, results
    for folder in results.values():
        summary = read_summary(folder / "summary.json")
        assert summary.uncertainty is not None and summary.metrics.n_examples == 360
    comparison, _ = compare(results["demo-trades-a2"], results["demo-trades-a0"])
    gains = {(d.metric, d.alpha): d for d in comparison.differences}
    for key in (("A_sa", 2.0), ("A_tr", 2.0)):
        assert gains[key].lo > 0, f"{key}: {gains[key]}"  # significant at 5%, paired on the same 360 images
