"""Values that differ but print alike never share a name.

Everywhere a number becomes a name (record columns, metrics keys in summary.json, run and
folder names of a sweep, table cells), ``wmrbench.core.config.number_key`` gives it: ``{x:g}`` where
that reads back as x (the names results always had), else the shortest round-trip form. Two
alphas that ``:g`` prints alike (0.1 and 0.10000000001; 1e-07 and 1.0000001e-07) get two names.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from tests.conftest import assert_one_line_error, invoke
from wmrbench.core.config import SelectBy, metric_label, number_from_key, number_key, parse_metric_label
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import default_train_run
from wmrbench.results.records import read_records, tr_columns
from wmrbench.training.sweep import sweep_run_name

ALIKE = [(0.1, 0.10000000001), (1e-7, 1.0000001e-7), (2.0, 2.0000000000000004)]


@pytest.mark.parametrize(("a", "b"), ALIKE)
def test_values_that_g_prints_alike_get_distinct_names_everywhere(a, b):
    assert f"{a:g}" == f"{b:g}"  # the old names collided
    assert number_key(a) != number_key(b)
    assert metric_label("A_sa", a) != metric_label("A_sa", b)
    assert tr_columns(a) != tr_columns(b)
    assert str(SelectBy("A_tr", a)) != str(SelectBy("A_tr", b))
    assert sweep_run_name("r", "digits", "trades", a) != sweep_run_name("r", "digits", "trades", b)
    from wmrbench.core.config import DatasetName, Defense
    assert default_train_run(DatasetName.DIGITS, Defense.TRADES, a) != default_train_run(DatasetName.DIGITS, Defense.TRADES, b)


def test_names_read_back_as_the_same_number_and_keep_the_old_spellings():
    assert [number_key(x) for x in (0.0, -0.0, 1.0, 1.5, 2.0, 1e-7, 2e-7, 0.5)] == \
        ["0", "0", "1", "1.5", "2", "1e-07", "2e-07", "0.5"]
    rng = random.Random(0)
    values = [rng.uniform(0, 10) for _ in range(2000)] + [rng.expovariate(1.0) * 10 ** rng.randint(-12, 12) for _ in range(2000)]
    for x in values:
        assert float(number_key(x)) == x
        assert number_from_key(number_key(x)) == x  # the one parse undoes the one name
        assert parse_metric_label(metric_label("A_tr", x)) == ("A_tr", x)
    assert len({number_key(x) for x in values}) == len(set(values))


def test_evaluate_keeps_two_alphas_that_print_alike_apart(digits_runs, tmp_path):
    checkpoint = next(iter(digits_runs.values()))
    results = tmp_path / "results"
    out = invoke("evaluate", "--checkpoint", checkpoint, "--n-examples", "12", "--steps", "2",
                 "--alpha-test", "0.1,0.10000000001", "--results-dir", results, "--run", "r", "--quiet", "--device", "cpu")
    assert out.exit_code == 0, out.output
    records = pd.read_csv(results / "r" / "records.csv")
    assert {"tr_correct@0.1", "tr_correct@0.10000000001", "tr_margin@0.1", "tr_margin@0.10000000001"} <= set(records.columns)
    summary = json.loads((results / "r" / "summary.json").read_text())
    for metric in ("A_sa", "A_tr"):
        assert set(summary["metrics"][metric]) == {"0.1", "0.10000000001"}
    # The leaderboard keeps both rows, and prints them apart.
    out = invoke("leaderboard", results, "--table", "non-uniform", "--output", "-")
    assert out.exit_code == 0, out.output
    rows = [line for line in out.stdout.splitlines() if "| r " in line or line.startswith("| digits")]
    cells = {cell.strip() for line in rows for cell in line.split("|")}
    assert {"0.1", "0.10000000001"} <= cells, out.stdout


def test_a_summary_with_one_alpha_under_two_keys_is_skipped_with_its_reason(digits_results, tmp_path):
    import shutil

    results = tmp_path / "results"
    source = next(p.parent for p in digits_results.rglob("summary.json"))
    shutil.copytree(source, results / "twice")
    path = results / "twice" / "summary.json"
    summary = json.loads(path.read_text())
    summary["metrics"]["A_sa"]["1.0"] = 0.0  # beside "1"
    path.write_text(json.dumps(summary))
    out = invoke("leaderboard", results)
    assert_one_line_error(out, "no summary.json under", "skipped 1 bad file")
    from wmrbench.results.records import read_summary
    with pytest.raises(WmrbenchError, match=r"has the keys '1' and '1.0' for one alpha 1"):
        read_summary(path)


@pytest.mark.parametrize("header", ["tr_correct@1,tr_correct@1", "tr_correct@1,tr_correct@1.0"])
def test_records_with_one_alpha_twice_are_refused(header, tmp_path):
    path = tmp_path / "records.csv"
    path.write_text(f"index,label,clean_correct,pgd_correct,pgd_margin,{header}\n0,1,1,1,0.5,1,1\n")
    with pytest.raises(WmrbenchError, match="for one alpha|twice"):
        read_records(path)


def test_a_sweep_of_two_alphas_that_print_alike_trains_two_runs(tmp_path):
    out = invoke("train", "--dataset", "digits", "--alpha-train", "0.1,0.10000000001", "--epochs", "1", "--steps", "1",
                 "--batch-size", "256", "--run", "s", "--checkpoint-dir", tmp_path, "--device", "cpu", "--quiet")
    assert out.exit_code == 0, out.output
    assert {p.name for p in tmp_path.iterdir()} == {"s-a0.1", "s-a0.10000000001"}
