"""Intervals wherever numbers are shown: terminal / Markdown / LaTeX cells (--ci), CSV columns,
the RobustBench JSON, the plot's bands, and table1's verdicts on "+ours" gains (no attack run:
real records files with random margins, as tests/report/test_report.py writes them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report.test_report import invoke, write_result
from wmrbench.report import CiStyle, TableFormat, TableKind, leaderboard, render
from wmrbench.report.leaderboard import gather
from wmrbench.report.plots import _bands
from wmrbench.report.reproduction import (
    DOES_NOT_HOLD, NOT_SIGNIFICANT, SIGNIFICANT, Gain, check_claims, comparison_table, gain_verdict,
)


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_result(root, "trades-a0", seed=0, n=400)
    write_result(root, "trades-a2", alpha_train=2.0, seed=1, n=400)
    return root


def _interval(results: Path, run: str, metric: str, alpha: float | None = None) -> tuple[float, float]:
    (found,) = [f for f in gather(results).summaries if f.name == run]
    return found.summary.uncertainty.interval(metric, alpha)


def test_every_format_shows_the_interval_as_asked(results: Path) -> None:
    frame = leaderboard(results).tables[TableKind.NON_UNIFORM]
    lo, hi = _interval(results, "trades-a2", "A_sa", 1.0)
    a2 = frame[(frame["Model"] == "trades-a2") & (frame["alpha_test"] == 1.0)].iloc[0]
    point = f"{a2['A_sa']:.2f}"
    md = {style: render(frame, TableFormat.MD, ci=style) for style in CiStyle}
    assert f"{point} ± {(hi - lo) / 2:.1f}" in md[CiStyle.PM]
    assert f"{point} [{lo:.2f}, {hi:.2f}]" in md[CiStyle.INTERVAL]
    assert " ± " not in md[CiStyle.NONE] and "_lo" not in md[CiStyle.PM]  # folded, not extra columns
    assert rf"{point} \ensuremath{{\pm}} {(hi - lo) / 2:.1f}" in render(frame, TableFormat.LATEX)
    csv = pd.read_csv(__import__("io").StringIO(render(frame, TableFormat.CSV)))
    row = csv[(csv["Model"] == "trades-a2") & (csv["alpha_test"] == 1.0)].iloc[0]
    assert (row["A_sa_lo"], row["A_sa_hi"]) == pytest.approx((lo, hi))
    assert "A_sa_lo" not in render(frame, TableFormat.CSV, ci=CiStyle.NONE)


def test_leaderboard_cli_takes_ci_and_refuses_an_unknown_style(results: Path) -> None:
    write_result(results, "small", seed=2, n=60)
    out = invoke("leaderboard", results, "--ci", "interval")
    assert out.exit_code == 0, out.stderr
    assert "[" in (results / "leaderboard-uniform.md").read_text()
    # 60 examples: fewer than 100 effective ones at every alpha > 0, said once beside the tables.
    text = " ".join(out.stdout.split())  # the one warning is wrapped to the tables' width
    assert out.stdout.count("Warning:") == 1 and "small (about " in text and "use more test examples" in text
    out = invoke("leaderboard", results, "--ci", "sigma")
    assert out.exit_code == 2 and "unknown ci 'sigma'; choose one of: pm, interval, none" in out.stderr


def test_robustbench_json_carries_the_intervals(results: Path, tmp_path: Path) -> None:
    leaderboard(results, TableFormat.ROBUSTBENCH, output=tmp_path / "rb")
    info = json.loads((tmp_path / "rb" / "digits" / "Linf" / "trades-a2.json").read_text())
    lo, hi = _interval(results, "trades-a2", "A_rob")
    intervals = info["wmrbench"]["intervals"]
    assert intervals["A_rob"] == [f"{lo:.2f}", f"{hi:.2f}"]
    assert intervals["method"] == "percentile bootstrap over examples" and intervals["level"] == 0.95
    assert set(intervals["A_sa"]) == {"0", "1", "2"} and intervals["n_eff"]["A_sa"]["0"] == pytest.approx(400)


def test_plot_bands_are_the_intervals(results: Path) -> None:
    (found, _) = gather(results).summaries
    bands = _bands(found, [0.0, 1.0, 2.0])
    unc = found.summary.uncertainty
    assert list(bands["A_sa"][0]) == [unc.interval("A_sa", k)[0] for k in (0.0, 1.0, 2.0)]
    assert list(bands["A_rob"][1]) == [unc.interval("A_rob")[1]] * 3
    bare = type(found)(found.name, found.folder, __import__("dataclasses").replace(found.summary, uncertainty=None))
    assert np.isnan(_bands(bare, [1.0])["A_tr"][0]).all()  # no interval: no band, never a made-up one


def test_gain_verdicts() -> None:
    assert gain_verdict(Gain(2.0, 0.5, 3.5, 0.01)) == SIGNIFICANT == "holds (significant at 5%)"
    assert gain_verdict(Gain(2.0, -0.5, 4.5, 0.2)) == NOT_SIGNIFICANT == "holds (not significant)"
    assert gain_verdict(Gain(-1.0, -3.0, 1.0, 0.4)) == DOES_NOT_HOLD == "does not hold"
    # Several seeds per model: the test over seeds decides, as `wmrbench compare` of two groups.
    assert gain_verdict(Gain(2.0, -0.5, 4.5, 0.01, runs=3)) == SIGNIFICANT
    assert gain_verdict(Gain(2.0, 0.5, 3.5, 0.2, runs=3)) == NOT_SIGNIFICANT


def test_claims_carry_each_gains_paired_interval(results: Path) -> None:
    summaries = [f.summary for f in gather(results).summaries]
    table = comparison_table(summaries)
    assert {"A_sa_lo", "A_sa_hi", "A_rob_lo"} <= set(table.columns)
    gains = {("TRADES+ours", k, m): Gain(1.0 if m == "A_sa" else 2.0, 0.2, 1.8 if m == "A_sa" else 3.0, 0.03)
             for k in (0.0, 1.0, 2.0) for m in ("A_nat", "A_rob", "A_sa", "A_tr")}
    gains[("TRADES+ours", 2.0, "A_tr")] = Gain(2.0, -1.0, 5.0, 0.3)
    claims = check_claims(table, gains).table
    assert list(claims["A_sa gain_lo"]) == [0.2] * 3
    verdicts = dict(zip(claims["alpha_test"], claims["holds"]))
    a_sa = dict(zip(claims["alpha_test"], claims["A_sa gain"]))
    a_tr = dict(zip(claims["alpha_test"], claims["A_tr gain"]))
    for alpha, verdict in verdicts.items():  # the verdict follows the measured gains and the intervals
        if a_sa[alpha] <= 0 or a_tr[alpha] <= 0:
            assert verdict == DOES_NOT_HOLD
        else:
            assert verdict == (NOT_SIGNIFICANT if alpha == 2.0 else SIGNIFICANT)
    lines = check_claims(table, gains).lines()
    assert "significant at 5% (paired 95% interval above 0)" in lines[0]
    assert "one training run each: this interval covers test examples only" in lines[0]
    seeds = {k: Gain(g.difference, g.lo, g.hi, g.p_value, runs=3) for k, g in gains.items()}
    assert "(paired t over 3 seeds)" in check_claims(table, seeds).lines()[0]
    assert "covers test examples only" not in check_claims(table, seeds).lines()[0]
    assert "no paired interval" in check_claims(table).lines()[0]
