"""``wmrbench evaluate`` prints intervals and ``wmrbench compare`` pairs two results, through the
real Typer app on the real MNIST checkpoint (150 test images, a short attack: the tests need
real records, not the paper's numbers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, assert_one_line_error, invoke, require_mnist

pytestmark = pytest.mark.slow  # three short attacks on real MNIST: about a minute on one core

N = "150"
COMMON = ("--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", MNIST_DIR,
          "--n-examples", N, "--precision", "fp32", "--device", "cpu", "--steps", "10", "--alpha-test", "1,2", "--quiet")


@pytest.fixture(scope="module")
def mnist_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """PGD seed 0, PGD seed 1 and APGD-CE on the same 150 images; the evaluate outputs kept."""
    require_mnist()
    root = tmp_path_factory.mktemp("compare-results")
    outputs = {}
    for run, extra in (("pgd", ()), ("pgd-seed1", ("--seed", "1")), ("apgd", ("--attack", "apgd-ce"))):
        out = invoke("evaluate", *COMMON, *extra, "--step-size", "0.03", "--results-dir", root, "--run", run)
        assert out.exit_code == 0, out.stdout + out.stderr
        outputs[run] = out.stdout + out.stderr
    return root, outputs


def test_evaluate_prints_intervals_and_records_them(mnist_results: tuple[Path, dict[str, str]]) -> None:
    root, outputs = mnist_results
    assert " ± " in outputs["pgd"]
    summary = json.loads((root / "pgd" / "summary.json").read_text())
    assert summary["schema"] == 2
    unc = summary["uncertainty"]
    lo, hi = unc["intervals"]["A_rob"]
    assert lo <= summary["metrics"]["A_rob"] <= hi
    width = (hi - lo) / 2
    assert f"{summary['metrics']['A_rob']:.2f} ± {width:.1f}" in outputs["pgd"]
    # 150 images at alpha 2: far fewer effective examples, and a warning that says so.
    assert unc["n_eff"]["A_sa"]["2"] < 100
    assert f"A_sa at alpha 2 rests on about {unc['n_eff']['A_sa']['2']:.0f} examples; use more test examples" in outputs["pgd"]


def _rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():  # the terminal table: columns apart by two spaces or more
        cells = [c.strip() for c in re.split(r"\s{2,}|│", line.strip()) if c.strip()]
        if len(cells) >= 6 and cells[0].startswith("A_"):  # not the legend under the table
            rows[cells[0] + ("" if cells[1] == "-" else f"({cells[1]})")] = cells
    return rows


@pytest.mark.parametrize("other", ["apgd", "pgd-seed1"])
def test_compare_reports_each_difference_with_its_paired_interval(mnist_results, other: str, tmp_path: Path) -> None:
    root, _ = mnist_results
    out = invoke("compare", root / "pgd", root / other, "--output", tmp_path / "diff.csv")
    assert out.exit_code == 0, out.stdout + out.stderr
    rows = _rows(out.stdout)
    assert set(rows) == {"A_nat", "A_rob", "A_sa(1)", "A_sa(2)", "A_tr(1)", "A_tr(2)", "A_wc(1)", "A_wc(2)"}
    table = pd.read_csv(tmp_path / "diff.csv")
    a = json.loads((root / "pgd" / "summary.json").read_text())["metrics"]
    b = json.loads((root / other / "summary.json").read_text())["metrics"]
    for _, row in table.iterrows():
        key = row["Metric"] if pd.isna(row["alpha_test"]) else f"{row['Metric']}({row['alpha_test']:g})"
        ours = a[row["Metric"]] if pd.isna(row["alpha_test"]) else a[row["Metric"]][f"{row['alpha_test']:g}"]
        theirs = b[row["Metric"]] if pd.isna(row["alpha_test"]) else b[row["Metric"]][f"{row['alpha_test']:g}"]
        assert row["A - B"] == pytest.approx(ours - theirs, abs=1e-9)  # the summaries' own numbers
        assert row["A - B_lo"] <= row["A - B"] <= row["A - B_hi"] and 0 < row["p (paired bootstrap)"] <= 1
        assert rows[key][4] == f"{row['A - B']:+.2f}" and rows[key][5] == f"[{row['A - B_lo']:+.2f}, {row['A - B_hi']:+.2f}]"
    # The clean inputs are the same images for both: A_nat does not differ, exactly.
    nat = table[table["Metric"] == "A_nat"].iloc[0]
    assert (nat["A - B"], nat["A - B_lo"], nat["A - B_hi"], nat["McNemar p"]) == (0, 0, 0, 1)
    rob = table[table["Metric"] == "A_rob"].iloc[0]
    assert 0 < rob["McNemar p"] <= 1


def test_compare_refuses_results_on_other_examples(mnist_results, tmp_path: Path) -> None:
    root, _ = mnist_results
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    records = pd.read_csv(root / "apgd" / "records.csv")
    records.iloc[:-1].to_csv(fewer / "records.csv", index=False)  # a result on 149 of the images
    out = invoke("compare", root / "pgd", fewer)
    assert_one_line_error(out, "pgd and fewer hold different test examples (150 examples against 149)")
    relabeled = tmp_path / "relabeled"
    relabeled.mkdir()
    records.assign(label=(records["label"] + 1) % 10).to_csv(relabeled / "records.csv", index=False)
    out = invoke("compare", root / "pgd", relabeled)
    assert_one_line_error(out, "hold different test examples", "has label")
    out = invoke("compare", root / "pgd", tmp_path / "missing")
    assert_one_line_error(out, "no records.csv")


def test_compare_markdown_output(mnist_results, tmp_path: Path) -> None:
    root, _ = mnist_results
    out = invoke("compare", root / "pgd", root / "apgd", "--output", tmp_path / "diff.md", "--resamples", "500", "--seed", "3")
    assert out.exit_code == 0, out.stderr
    text = (tmp_path / "diff.md").read_text()
    assert text.startswith("A = pgd, B = apgd: 150 paired examples, 500 bootstrap resamples (seed 3)")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| A_")]
    assert [r[:2] for r in rows][:4] == [["A_nat", "-"], ["A_rob", "-"], ["A_sa", "1"], ["A_tr", "1"]]
    assert "95% paired interval" in text


def test_compare_against_one_reference_is_compare_records_pair_by_pair(mnist_results) -> None:
    """What the HTML report runs: every result against its leader in one bootstrap pass, the same
    Comparison as `compare` would give each pair, and a pair on other examples refused in place."""
    from wmrbench.results.comparison import compare_against, compare_records
    from wmrbench.core.errors import WmrbenchError
    from wmrbench.results.records import read_records

    root, _ = mnist_results
    records = {run: read_records(root / run / "records.csv") for run in ("pgd", "pgd-seed1", "apgd")}
    others = [("pgd-seed1", records["pgd-seed1"]), ("fewer", records["apgd"].iloc[:100]), ("apgd", records["apgd"])]
    got = compare_against("pgd", records["pgd"], others)
    assert got[0] == compare_records("pgd-seed1", records["pgd-seed1"], "pgd", records["pgd"])
    assert got[2] == compare_records("apgd", records["apgd"], "pgd", records["pgd"])
    assert isinstance(got[1], WmrbenchError) and "fewer and pgd hold different test examples (100 examples against 150)" in str(got[1])
