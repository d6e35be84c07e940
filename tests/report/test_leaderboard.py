"""`leaderboard`: the paper's tables from real summaries, in Markdown, CSV and LaTeX."""

from __future__ import annotations

import dataclasses
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, invoke
from wmrbench.core.config import DatasetName
from wmrbench.results.records import read_summary, write_summary
from wmrbench.report import paper_tables

PROTOCOL = ["Attack", "Norm", "eps", "Steps", "Step size", "Restarts", "Restart rule", "Examples", "Precision"]
SHARED_PAPER = REPO.parent / "shared" / "paper" / "paper_tables.csv"


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
        "Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_sa", "A_tr", "A_wc (wmrbench)", *PROTOCOL, "audit"]
    assert [c.strip() for c in uniform.splitlines()[0].split("|")[1:-1]] == [
        "Dataset", "Model", "Defense", "1/lambda", "alpha_train", "A_nat", "A_rob", *PROTOCOL, "audit"]
    # One row per model and alpha_test (3 each) / per model; the paper's row labels.
    assert len(non_uniform.splitlines()) == 2 + 6 and len(uniform.splitlines()) == 2 + 2
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in uniform.splitlines()[2:]]
    assert [c[:5] for c in cells] == [["digits", "trades-a0", "TRADES", "6", "-"],  # the baseline: no alpha
                                      ["digits", "trades-a2", "TRADES+ours", "6", "2"]]
    assert "| digits    | trades-a2 | TRADES+ours |" in non_uniform  # text left, numbers right
    summary = read_summary(results / "trades-a2" / "summary.json")
    assert f"{summary.metrics.A_tr[2.0]:.2f}" in non_uniform
    # Each row says how it was measured (the fixture's evaluate: 3 steps of the digits preset on 60 images).
    assert cells[1][7:] == ["PGD", "Linf", "0.1", "3", "0.01", "1", "weighted", "60", "fp32", "not run"]


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
