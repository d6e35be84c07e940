"""`leaderboard`: the paper's tables from real summaries, in Markdown, CSV and LaTeX."""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import invoke
from wmrbench.config import DatasetName
from wmrbench.records import read_summary, write_summary
from wmrbench.report import paper_tables

SHARED_PAPER = Path(__file__).resolve().parents[1] / ".." / "shared" / "paper" / "paper_tables.csv"


@pytest.fixture()
def results(digits_results: Path, tmp_path: Path) -> Path:
    """A private copy of the real digits results (tests add files to it)."""
    return Path(shutil.copytree(digits_results, tmp_path / "results"))


def _as_paper_run(results: Path, name: str, dataset: str, defense: str, alpha_train: float | None) -> None:
    """A copy of a real summary relabelled as a paper setting (the numbers stay ours)."""
    summary = read_summary(results / "trades-a2" / "summary.json")
    model = dataclasses.replace(summary.model, name=name, defense=defense, alpha_train=alpha_train,
                                beta=5.0 if defense == "trades" else None)
    config = dataclasses.replace(summary.config, dataset=DatasetName(dataset), run=name)
    write_summary(results / name / "summary.json", dataclasses.replace(summary, run=name, model=model, config=config))


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def test_markdown_tables_in_the_papers_format(results: Path) -> None:
    out = invoke("leaderboard", results)
    assert out.exit_code == 0, out.output
    non_uniform = (results / "leaderboard-non-uniform.md").read_text()
    uniform = (results / "leaderboard-uniform.md").read_text()
    assert [c.strip() for c in non_uniform.splitlines()[0].split("|")[1:-1]] == [
        "Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_sa", "A_tr"]
    assert [c.strip() for c in uniform.splitlines()[0].split("|")[1:-1]] == [
        "Dataset", "Model", "Defense", "1/lambda", "alpha_train", "A_nat", "A_rob"]
    # One row per model and alpha_test (3 each) / per model; the paper's row labels.
    assert len(non_uniform.splitlines()) == 2 + 6 and len(uniform.splitlines()) == 2 + 2
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in uniform.splitlines()[2:]]
    assert [c[:5] for c in cells] == [["digits", "trades-a0", "TRADES", "6", "-"],  # the baseline: no alpha
                                      ["digits", "trades-a2", "TRADES+ours", "6", "2"]]
    assert "| digits    | trades-a2 | TRADES+ours |" in non_uniform  # text left, numbers right
    summary = read_summary(results / "trades-a2" / "summary.json")
    assert f"{summary.metrics.A_tr['2']:.2f}" in non_uniform


def test_rerun_writes_byte_identical_files(results: Path, tmp_path: Path) -> None:
    for fmt in ("md", "csv", "latex"):
        assert invoke("leaderboard", results, "--format", fmt, "--compare-paper").exit_code == 0
    files = sorted(results.glob("leaderboard-*"))
    assert [f.name for f in files] == [
        "leaderboard-non-uniform.csv", "leaderboard-non-uniform.md", "leaderboard-non-uniform.tex",
        "leaderboard-uniform.csv", "leaderboard-uniform.md", "leaderboard-uniform.tex"]
    first = {f.name: f.read_bytes() for f in files}
    for fmt in ("latex", "md", "csv"):
        assert invoke("leaderboard", results, "--format", fmt, "--compare-paper").exit_code == 0
    assert {f.name: f.read_bytes() for f in sorted(results.glob("leaderboard-*"))} == first
    out = tmp_path / "board.md"
    assert invoke("leaderboard", results, "--output", out).exit_code == 0
    once = out.read_bytes()
    assert invoke("leaderboard", results, "--output", out).exit_code == 0
    assert out.read_bytes() == once


def test_corrupt_and_foreign_json_give_a_warning_and_the_table(results: Path) -> None:
    (results / "broken").mkdir()
    (results / "broken" / "summary.json").write_text('{"run": "broken", "metrics": {')
    (results / "foreign").mkdir()
    (results / "foreign" / "summary.json").write_text(json.dumps({"accuracy": 0.9, "model": "resnet"}))
    out = invoke("leaderboard", results, "--format", "csv")
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 2
    assert f"skipped {results / 'broken' / 'summary.json'}: not valid JSON" in warnings[0]
    assert f"skipped {results / 'foreign' / 'summary.json'}: not a wmrbench summary" in warnings[1]
    table = _csv(results / "leaderboard-non-uniform.csv")
    assert sorted(set(table["Model"])) == ["trades-a0", "trades-a2"]


def test_compare_paper_puts_the_papers_numbers_beside_ours(results: Path) -> None:
    _as_paper_run(results, "mnist-trades-ours", "mnist", "trades", 2.0)
    _as_paper_run(results, "cifar-pgd-ours", "cifar10", "pgd", 0.1)
    out = invoke("leaderboard", results, "--format", "csv", "--compare-paper")
    assert out.exit_code == 0, out.output
    table = _csv(results / "leaderboard-non-uniform.csv")
    assert list(table.columns) == ["Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_rob (paper)",
                                   "A_sa", "A_sa (paper)", "A_tr", "A_tr (paper)", "Paper table"]
    row = table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 1.0)].iloc[0]
    assert (row["A_rob (paper)"], row["A_sa (paper)"], row["A_tr (paper)"], row["Paper table"]) == (95.20, 86.34, 85.94, 1)
    row = table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 2.0)].iloc[0]
    assert (row["A_sa (paper)"], row["A_tr (paper)"]) == (66.71, 65.61)
    assert table[table["Dataset"] == "digits"]["A_rob (paper)"].isna().all()  # not in the paper
    assert table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 0.0)]["A_sa (paper)"].isna().all()
    uniform = _csv(results / "leaderboard-uniform.csv")
    row = uniform[uniform["Model"] == "cifar-pgd-ours"].iloc[0]
    assert (row["A_nat (paper)"], row["A_rob (paper)"], row["Paper table"]) == (81.60, 49.53, 4)
    assert uniform[uniform["Model"] == "mnist-trades-ours"]["A_nat (paper)"].isna().all()  # Tables 4-5: no MNIST


def test_latex_output_is_a_booktabs_table(results: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "tables.tex"
    out = invoke("leaderboard", results, "--format", "latex", "--output", out_file)
    assert out.exit_code == 0, out.output
    tex = out_file.read_text()
    assert tex.count(r"\begin{tabular}") == 2 and tex.count(r"\bottomrule") == 2
    assert r"$\alpha_{\mathrm{test}}$ & $A_{\mathrm{rob}}$ & $A_{\mathrm{sa}}$ & $A_{\mathrm{tr}}$ \\" in tex
    assert r"$1/\lambda$" in tex
    assert r"digits & trades-a2 & TRADES+ours & 2 & 0 &" in tex
    assert "_" not in tex.replace(r"\_", "").replace("_{", "")  # every underscore escaped or a subscript


def test_sort_by_a_metric_puts_the_best_first(results: Path) -> None:
    out = invoke("leaderboard", results, "--format", "csv", "--sort-by", "a_tr", "--table", "non-uniform")
    assert out.exit_code == 0, out.output
    table = _csv(results / "leaderboard-non-uniform.csv")
    assert list(table["A_tr"]) == sorted(table["A_tr"], reverse=True)
    assert not (results / "leaderboard-uniform.csv").exists()
    out = invoke("leaderboard", results, "--sort-by", "speed")
    assert out.exit_code == 2 and "--sort-by 'speed' is not a column; choose one of: Dataset, Model" in out.stderr


def test_bad_requests_are_one_line(results: Path, tmp_path: Path) -> None:
    out = invoke("leaderboard", results, "--format", "csv", "--output", tmp_path / "x.csv")
    assert out.exit_code == 2 and "a CSV file holds one table" in out.stderr
    out = invoke("leaderboard", tmp_path / "nowhere")
    assert out.exit_code == 2 and "results folder not found" in out.stderr
    (tmp_path / "empty").mkdir()
    out = invoke("leaderboard", tmp_path / "empty")
    assert out.exit_code == 2 and "no summary.json under" in out.stderr
    out = invoke("leaderboard", results, "--format", "html")
    assert out.exit_code == 2 and "choose one of: md, csv, latex" in out.stderr


def test_the_package_ships_the_papers_tables() -> None:
    ours = paper_tables()
    assert len(ours) == 65 and set(ours["table"]) == {1, 2, 3, 4, 5}
    if not SHARED_PAPER.is_file():
        pytest.skip(f"{SHARED_PAPER} is absent: cannot compare the shipped copy with it")
    assert resources.files("wmrbench").joinpath("resources/paper_tables.csv").read_bytes() == SHARED_PAPER.read_bytes()
