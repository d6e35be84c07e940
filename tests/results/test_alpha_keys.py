"""alpha_test is a float in memory, from the command line to the tables; its name ('2', '1.5',
'0.10000000001': ``core.config.number_key``) exists only in the files (summary.json,
records.csv, CSV tables), and a label such as 'A_sa@2' is made by ``core.config.metric_label``.

These tests fail if a string alpha key reaches the comparison and report layers (a reader that
keeps summary.json's keys as they are, a metric computed under a name) or if a float key is
written under another name than the one files always had ('2.0' for '2').
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wmrbench.core.config import metric_label, to_jsonable
from wmrbench.report.board import build_board
from wmrbench.report.tables import NON_UNIFORM, build_table
from wmrbench.results.comparison import compare_records, comparison_frame, display_rows
from wmrbench.results.metrics import compute_metrics
from wmrbench.results.records import (
    RECORDS_NAME, SUMMARY_NAME, Metrics, Summary, metric_values, read_records, read_summary, tr_columns,
)
from wmrbench.results.uncertainty import BootstrapConfig, uncertainty

ODD = 0.10000000001  # prints as 0.1 under :g; its own name everywhere


def _float_keys(table: dict) -> bool:
    return bool(table) and all(type(k) is float for k in table)


def _records(alphas: tuple[float, ...], seed: int) -> pd.DataFrame:
    """Real records layout (clean, PGD, one weighted attack per alpha), consistent margins."""
    rng = np.random.default_rng(seed)
    n = 200
    out = {"index": np.arange(n), "label": rng.integers(0, 10, n)}
    for prefix in ("clean", "pgd"):
        margin = rng.uniform(-0.9, 0.9, n)
        out[f"{prefix}_correct"], out[f"{prefix}_margin"] = margin > 0, margin
    for alpha in alphas:
        correct, margin = tr_columns(alpha)
        values = rng.uniform(-0.9, 0.9, n)
        out[correct], out[margin] = values > 0, values
    return pd.DataFrame(out)


def test_a_summary_read_from_its_file_holds_float_alphas_and_writes_the_same_bytes(digits_results):
    for path in sorted(digits_results.rglob(SUMMARY_NAME)):
        summary = read_summary(path)
        m, u = summary.metrics, summary.uncertainty
        for table in (m.A_sa, m.A_tr, m.A_wc, *(u.intervals[k] for k in ("A_sa", "A_tr", "A_wc")), *u.n_eff.values()):
            assert _float_keys(table), table
        assert m.alphas == [0.0, 1.0, 2.0]
        assert list(json.loads(path.read_text())["metrics"]["A_sa"]) == ["0", "1", "2"]  # the names files always had
        # The one place names come back: the file's own text, key for key.
        assert json.dumps(summary.to_json(), indent=2) + "\n" == path.read_text()
        # An old summary (schema 1, no intervals) is read the same way.
        old = json.loads(path.read_text())
        del old["uncertainty"], old["schema"]
        assert _float_keys(Summary.from_json(old).metrics.A_sa)


def test_comparisons_and_boards_see_floats_and_label_them_as_before(digits_results):
    folders = sorted(p.parent for p in digits_results.rglob(SUMMARY_NAME))
    (name_a, a), (name_b, b) = ((f.name, read_records(f / RECORDS_NAME)) for f in folders)
    c = compare_records(name_a, a, name_b, b, BootstrapConfig(resamples=50))
    assert {d.alpha for d in c.differences} == {None, 0.0, 1.0, 2.0}
    assert all(d.alpha is None or type(d.alpha) is float for d in c.differences)
    assert list(comparison_frame(c)["alpha_test"].dropna().unique()) == [0.0, 1.0, 2.0]
    shown = {row[1] for row in display_rows(c)[1]}
    assert shown == {"-", "0", "1", "2"}  # alpha 0 shows as 0, never as "-" (a falsy float)
    board = build_board([(f.name, read_summary(f / SUMMARY_NAME), "not run") for f in folders])
    assert board.alphas == (0.0, 1.0, 2.0)
    assert [c.label for c in board.columns][:5] == ["A_nat", "A_rob", "A_sa(0)", "A_tr(0)", "A_wc(0)"]
    assert all(isinstance(alpha, float) for r in board.rows for _, alpha in r.cells if alpha is not None)


def test_tables_and_files_name_float_alphas_as_results_always_did():
    alphas = (0.0, 1.5, 2.0, ODD)
    records = _records(alphas, 0)
    metrics = compute_metrics(records)
    assert metrics.alphas == list(alphas) and _float_keys(metrics.A_tr)
    unc = uncertainty(records, None, BootstrapConfig(resamples=50))
    assert _float_keys(unc.intervals["A_sa"]) and _float_keys(unc.n_eff["A_tr"])
    named = metrics.to_json()
    assert list(named["A_sa"]) == ["0", "1.5", "2", "0.10000000001"]
    assert Metrics.from_json(named) == metrics  # the names read back as the same floats
    assert to_jsonable(unc)["n_eff"]["A_sa"].keys() == {"0", "1.5", "2", "0.10000000001"}
    assert list(metric_values(metrics))[2:6] == ["A_sa@0", "A_sa@1.5", "A_sa@2", "A_sa@0.10000000001"]
    assert metric_label("A_tr", 2.0) == "A_tr@2" and metric_label("A_tr", 2.0, paren=True) == "A_tr(2)"
    assert metric_label("A_rob") == "A_rob"


def test_the_papers_table_is_built_from_float_alphas(digits_results):
    summaries = [read_summary(p) for p in sorted(digits_results.rglob(SUMMARY_NAME))]
    frame = build_table(summaries, NON_UNIFORM)
    assert sorted(set(frame["alpha_test"])) == [0.0, 1.0, 2.0]
    for summary in summaries:
        rows = frame[frame["Model"] == summary.run]
        assert list(rows["A_sa"]) == pytest.approx([summary.metrics.A_sa[a] for a in rows["alpha_test"]])
