"""`wmrbench.report` on result files written here (no training or attack needed): tables in
Markdown, CSV and LaTeX, sorting, the paper's numbers beside ours, bad files as warnings, plots.

Each result is a real records.csv (random margins, a fixed seed) and the summary.json the
evaluation would write for it: the metrics are computed from the records, the config is a real
``EvalConfig`` from the presets.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.conftest import REPO
from wmrbench.cli.app import app
from wmrbench.core.errors import WmrbenchError
from wmrbench.results.metrics import compute_metrics
from wmrbench.core.presets import eval_config
from wmrbench.results.records import ModelInfo, Summary, read_summary, tr_columns, write_records, write_summary
from wmrbench.report import (
    TableFormat, TableKind, compare_with_paper, defense_label, gather, leaderboard, make_plots, paper_tables,
    print_table, render, result_table,
)

PROTOCOL = ["Attack", "Norm", "eps", "Steps", "Step size", "Restarts", "Restart rule", "Examples", "Precision"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _records(n: int, alphas: tuple[float, ...], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-0.5, 1.0, n)
    pgd = clean - rng.uniform(0.0, 0.8, n)  # an attack lowers the margin
    columns = {"index": np.arange(n), "label": rng.integers(0, 10, n), "clean_correct": (clean > 0).astype(int),
               "clean_margin": clean, "pgd_correct": (pgd > 0).astype(int), "pgd_margin": pgd}
    for alpha in alphas:
        weighted = pgd - rng.uniform(0.0, 0.1 * alpha, n)  # the weighted attack, a little stronger
        correct_col, margin_col = tr_columns(alpha)
        columns[correct_col], columns[margin_col] = (weighted > 0).astype(int), weighted
    return pd.DataFrame(columns)


def write_result(
    results: Path, run: str, dataset: str = "digits", defense: str | None = "trades", alpha_train: float = 0.0,
    alpha_test: tuple[float, ...] = (0.0, 1.0, 2.0), seed: int = 0, n: int = 60, with_records: bool = True,
    protocol: str = "default",
) -> Summary:
    """``results/<run>/{records.csv,summary.json}`` as ``wmrbench evaluate`` writes them."""
    records = _records(n, alpha_test, seed)
    beta = 6.0 if defense == "trades" else None
    source = "checkpoint" if defense else "robustbench"
    model = ModelInfo(name=run, source=source, arch="digitsnet", defense=defense,
                      alpha_train=alpha_train if defense else None, beta=beta)
    cfg = eval_config(dataset, run, protocol, alpha_test=alpha_test, n_examples=n, device="cpu", results_dir=str(results))
    summary = Summary(run=run, model=model, config=cfg, metrics=compute_metrics(records, list(alpha_test)),
                      seconds=1.5, processes=1, versions={"wmrbench": "test"})
    if with_records:
        write_records(results / run / "records.csv", records)
    write_summary(results / run / "summary.json", summary)
    return summary


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """TRADES and TRADES+ours (alpha_train 2) on digits, evaluated at alpha_test 0, 1, 2."""
    root = tmp_path / "results"
    write_result(root, "trades-a0", seed=0)
    write_result(root, "trades-a2", alpha_train=2.0, seed=1)
    return root


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _cells(markdown: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in markdown.splitlines()]


def test_markdown_tables_in_the_papers_format(results: Path) -> None:
    board = leaderboard(results)
    assert board.files == [results / "leaderboard-non-uniform.md", results / "leaderboard-uniform.md"]
    assert board.warnings == []
    non_uniform, uniform = (f.read_text() for f in board.files)
    assert _cells(non_uniform)[0] == ["Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_sa", "A_tr",
                                      "A_wc (wmrbench)", *PROTOCOL, "audit"]
    assert _cells(uniform)[0] == ["Dataset", "Model", "Defense", "1/lambda", "alpha_train", "A_nat", "A_rob", *PROTOCOL, "audit"]
    # One row per model and alpha_test / per model; the paper's row labels; the baseline's alpha is "-".
    assert len(non_uniform.splitlines()) == 2 + 6 and len(uniform.splitlines()) == 2 + 2
    assert [c[:5] for c in _cells(uniform)[2:]] == [["digits", "trades-a0", "TRADES", "6", "-"],
                                                    ["digits", "trades-a2", "TRADES+ours", "6", "2"]]
    assert "| digits    | trades-a2 | TRADES+ours |" in non_uniform  # text left, numbers right
    a2 = read_summary(results / "trades-a2" / "summary.json")
    row = _cells(non_uniform)[-1]
    # Every accuracy carries its 95% interval's half-width (computed from the records: these
    # summaries were written without intervals, as schema 1 wrote them).
    assert all(" ± " in cell for cell in row[5:9]), row
    row = [cell.split(" ± ")[0] for cell in row]
    assert row == ["digits", "trades-a2", "TRADES+ours", "2", "2", f"{a2.metrics.A_rob:.2f}",
                   f"{a2.metrics.A_sa[2.0]:.2f}", f"{a2.metrics.A_tr[2.0]:.2f}", f"{a2.metrics.A_wc[2.0]:.2f}",
                   "PGD", "Linf", "0.1", "20", "0.01", "1", "weighted", "60", "fp32", "not run"]  # how it was measured; no audit


def test_csv_gives_metrics_and_their_intervals_to_the_same_six_decimals(results: Path) -> None:
    leaderboard(results, TableFormat.CSV)
    text = (results / "leaderboard-non-uniform.csv").read_text()
    table = pd.read_csv(results / "leaderboard-non-uniform.csv")
    a0 = read_summary(results / "trades-a0" / "summary.json")
    rows = table[table["Model"] == "trades-a0"]
    assert list(rows["alpha_test"]) == [0.0, 1.0, 2.0] and rows["alpha_train"].isna().all()
    assert list(rows["A_sa"]) == [round(a0.metrics.A_sa[k], 6) for k in (0.0, 1.0, 2.0)]
    assert list(rows["A_tr"]) == [round(a0.metrics.A_tr[k], 6) for k in (0.0, 1.0, 2.0)]
    assert rows["A_sa"].iloc[0] == rows["A_tr"].iloc[0] == round(a0.metrics.A_rob, 6)  # alpha 0 is A_rob exactly
    # every accuracy and interval bound: at most six decimals (38.333333, not 38.333333333333336)
    assert not re.search(r"\.\d{7,}", text), text


def test_latex_output_is_a_booktabs_table(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables.tex"
    board = leaderboard(results, TableFormat.LATEX, output=out)
    assert board.files == [out]
    tex = out.read_text()
    assert tex.count(r"\begin{tabular}") == 2 and tex.count(r"\bottomrule") == 2
    assert r"\caption{Non-uniform attacks (the paper's Tables 1-3)}" in tex
    assert r"$\alpha_{\mathrm{test}}$ & $A_{\mathrm{rob}}$ & $A_{\mathrm{sa}}$ & $A_{\mathrm{tr}}$ & $A_{\mathrm{wc}}$ (wmrbench) & Attack" in tex
    assert r"\begin{tabular}{lllrrrrrrllrrrrlrll}" in tex  # ... Precision, audit and r"$1/\lambda$" in tex
    assert r"digits & trades-a2 & TRADES+ours & 2 & 0 &" in tex
    assert "_" not in tex.replace(r"\_", "").replace("_{", "")  # every underscore escaped or a subscript


def test_one_output_file_holds_both_tables_titled(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "board.md"
    leaderboard(results, output=out)
    text = out.read_text()
    assert text.startswith("## Non-uniform attacks (the paper's Tables 1-3)\n\n| Dataset")
    assert "\n\n## Uniform attacks (the paper's Tables 4-5)\n\n| Dataset" in text
    with pytest.raises(WmrbenchError, match="a CSV file holds one table"):
        leaderboard(results, TableFormat.CSV, output=tmp_path / "x.csv")
    leaderboard(results, TableFormat.CSV, TableKind.UNIFORM, output=tmp_path / "x.csv")
    assert pd.read_csv(tmp_path / "x.csv")["Model"].tolist() == ["trades-a0", "trades-a2"]


def test_rerun_writes_byte_identical_files(results: Path) -> None:
    def run_all() -> dict[str, bytes]:
        for fmt in TableFormat:
            leaderboard(results, fmt, compare_paper=True)
        return {f.name: f.read_bytes() for f in sorted(results.glob("leaderboard-*"))}

    first = run_all()
    assert list(first) == ["leaderboard-non-uniform.csv", "leaderboard-non-uniform.md", "leaderboard-non-uniform.tex",
                           "leaderboard-uniform.csv", "leaderboard-uniform.md", "leaderboard-uniform.tex"]
    assert run_all() == first


def test_rows_are_ordered_and_sort_by_puts_the_best_first(results: Path) -> None:
    write_result(results, "a-pgd", defense="pgd", alpha_train=0.5, seed=2)
    write_result(results, "mnist-run", dataset="mnist", seed=3)
    board = leaderboard(results, TableFormat.CSV, TableKind.NON_UNIFORM)
    frame = board.tables[TableKind.NON_UNIFORM]
    assert list(dict.fromkeys(zip(frame["Dataset"], frame["Model"]))) == [
        ("digits", "a-pgd"), ("digits", "trades-a0"), ("digits", "trades-a2"), ("mnist", "mnist-run")]
    assert list(frame[frame["Model"] == "a-pgd"]["Defense"]) == ["PGD+ours"] * 3
    board = leaderboard(results, TableFormat.CSV, TableKind.NON_UNIFORM, sort_by="a_tr")  # any case
    table = pd.read_csv(results / "leaderboard-non-uniform.csv")
    # Ranked within each data set and alpha_test: never MNIST against digits, alpha 1 against 2.
    assert list(dict.fromkeys(zip(table["Dataset"], table["alpha_test"]))) == sorted(set(zip(table["Dataset"], table["alpha_test"])))
    for _, group in table.groupby(["Dataset", "alpha_test"]):
        assert list(group["A_tr"]) == sorted(group["A_tr"], reverse=True)
    assert not (results / "leaderboard-uniform.csv").exists()
    leaderboard(results, TableFormat.CSV, TableKind.UNIFORM, sort_by="alpha_train")  # alphas increase, "-" last
    assert pd.read_csv(results / "leaderboard-uniform.csv")["alpha_train"].tolist()[:2] == [0.5, 2.0]
    with pytest.raises(WmrbenchError, match="sort_by='speed' is not a column; choose one of: Dataset, Model"):
        leaderboard(results, sort_by="speed")


def test_compare_paper_puts_the_papers_numbers_beside_ours(results: Path) -> None:
    write_result(results, "mnist-trades-ours", dataset="mnist", alpha_train=2.0, alpha_test=(0.0, 1.0, 2.0))
    write_result(results, "cifar-pgd-ours", dataset="cifar10", defense="pgd", alpha_train=0.1)
    leaderboard(results, TableFormat.CSV, compare_paper=True)
    table = pd.read_csv(results / "leaderboard-non-uniform.csv")
    assert list(table.columns) == ["Dataset", "Model", "Defense", "alpha_train", "alpha_test",
                                   "A_rob", "A_rob_lo", "A_rob_hi", "A_rob (paper)", "A_sa", "A_sa_lo", "A_sa_hi", "A_sa (paper)",
                                   "A_tr", "A_tr_lo", "A_tr_hi", "A_tr (paper)",
                                   "A_wc (wmrbench)", "A_wc (wmrbench)_lo", "A_wc (wmrbench)_hi", *PROTOCOL, "audit",
                                   "Paper table", "paper in our 95% CI",
                                   "vs paper's protocol"]
    row = table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 1.0)].iloc[0]
    assert (row["A_rob (paper)"], row["A_sa (paper)"], row["A_tr (paper)"], row["Paper table"]) == (95.20, 86.34, 85.94, 1)
    row = table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 2.0)].iloc[0]
    assert (row["A_sa (paper)"], row["A_tr (paper)"]) == (66.71, 65.61)
    # Whether the paper's number lies inside our interval, per metric, as the interval says.
    inside = "yes" if row["A_sa_lo"] <= 66.71 <= row["A_sa_hi"] else "no"
    assert f"A_sa {inside}" in row["paper in our 95% CI"]
    assert row["A_sa_lo"] <= row["A_sa"] <= row["A_sa_hi"]
    assert table[table["Dataset"] == "digits"]["A_rob (paper)"].isna().all()  # not in the paper
    assert table[(table["Model"] == "mnist-trades-ours") & (table["alpha_test"] == 0.0)]["A_sa (paper)"].isna().all()
    uniform = pd.read_csv(results / "leaderboard-uniform.csv")
    row = uniform[uniform["Model"] == "cifar-pgd-ours"].iloc[0]
    assert (row["A_nat (paper)"], row["A_rob (paper)"], row["Paper table"]) == (81.60, 49.53, 4)
    assert uniform[uniform["Model"] == "mnist-trades-ours"]["A_nat (paper)"].isna().all()  # Tables 4-5: no MNIST
    # A paper number beside ours is marked with what differs between the two evaluations.
    assert set(table[table["Model"] == "mnist-trades-ours"]["vs paper's protocol"].dropna()) == {
        "differs: Restarts 1 (paper 10), Examples 60 (paper 10000)"}
    assert row["vs paper's protocol"] == (
        "differs: Step size 0.003 (paper 0.0031), Restarts 1 (paper 10), Examples 60 (paper 10000)")
    assert table[table["Dataset"] == "digits"]["vs paper's protocol"].isna().all()
    tex = render(compare_with_paper(leaderboard(results).tables[TableKind.UNIFORM], TableKind.UNIFORM), TableFormat.LATEX)
    assert r"$A_{\mathrm{nat}}$ (paper)" in tex


def test_compare_paper_says_same_only_for_the_papers_protocol_on_the_full_test_set(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_result(results, "full", dataset="mnist", alpha_train=2.0, alpha_test=(1.0,), n=10_000, protocol="paper")
    write_result(results, "part", dataset="mnist", alpha_train=2.0, alpha_test=(1.0,), n=500, protocol="paper")
    table = compare_with_paper(leaderboard(results).tables[TableKind.NON_UNIFORM], TableKind.NON_UNIFORM)
    assert table.set_index("Model")["vs paper's protocol"].to_dict() == {
        "full": "same", "part": "differs: Examples 500 (paper 10000)"}
    assert table.set_index("Model")["A_sa (paper)"].to_dict() == {"full": 86.34, "part": 86.34}  # shown, but marked


def test_bad_files_are_warnings_and_the_table_is_still_written(results: Path) -> None:
    bad = {
        "broken": '{"run": "broken", "metrics": {',
        "foreign": json.dumps({"accuracy": 0.9, "model": "resnet"}),
        "a-list": "[1, 2]",
    }
    newer = json.loads((results / "trades-a2" / "summary.json").read_text())
    newer["schema"] = 99
    bad["newer"] = json.dumps(newer)
    for name, text in bad.items():
        (results / name).mkdir()
        (results / name / "summary.json").write_text(text)
    out = invoke("leaderboard", results, "--format", "csv")
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: skipped {results / 'a-list' / 'summary.json'}: not a wmrbench summary (a JSON list, not an object)",
        f"Warning: skipped {results / 'broken' / 'summary.json'}: not valid JSON (JSONDecodeError: Expecting property "
        "name enclosed in double quotes: line 1 column 31 (char 30))",
        f"Warning: skipped {results / 'foreign' / 'summary.json'}: not a wmrbench summary (not a EvalConfig record)",
        f"Warning: skipped {results / 'newer' / 'summary.json'}: not a wmrbench summary (schema 99; this wmrbench reads schema 1, 2)",
    ]
    assert sorted(set(pd.read_csv(results / "leaderboard-non-uniform.csv")["Model"])) == ["trades-a0", "trades-a2"]
    for name in ("trades-a0", "trades-a2"):
        (results / name / "summary.json").unlink()
    out = invoke("leaderboard", results)
    assert out.exit_code == 2 and f"no summary.json under {results}; skipped 4 bad file(s)" in out.stderr


def test_a_summary_without_the_schema_field_is_read(results: Path) -> None:
    """Files written before the schema field existed are version 1."""
    path = results / "trades-a2" / "summary.json"
    obj = json.loads(path.read_text())
    del obj["schema"]
    path.write_text(json.dumps(obj))
    found = gather(results)
    assert [f.name for f in found.summaries] == ["trades-a0", "trades-a2"] and found.warnings == []


def test_bad_requests_are_one_line(tmp_path: Path) -> None:
    out = invoke("leaderboard", tmp_path / "nowhere")
    assert out.exit_code == 2 and "results folder not found" in out.stderr
    (tmp_path / "empty").mkdir()
    out = invoke("leaderboard", tmp_path / "empty")
    assert out.exit_code == 2 and "no summary.json under" in out.stderr
    out = invoke("leaderboard", tmp_path / "empty", "--format", "html")
    assert out.exit_code == 2 and "choose one of: md, csv, latex" in out.stderr


def test_a_result_directly_in_the_folder_is_named_by_its_run(tmp_path: Path) -> None:
    summary = write_result(tmp_path, "only")
    found = gather(tmp_path / "only")
    # Written without intervals (as schema 1): gather computes them from the records beside it.
    assert found.summaries[0].summary.uncertainty is not None
    assert [(f.name, f.folder, dataclasses.replace(f.summary, uncertainty=None)) for f in found.summaries] == [
        ("only", tmp_path / "only", summary)]


def test_result_table_and_defense_labels(tmp_path: Path) -> None:
    ours = write_result(tmp_path, "ours", defense="pgd", alpha_train=0.5, alpha_test=(1.0, 1.5))
    zoo = write_result(tmp_path, "Zoo2021", defense=None, alpha_test=(1.0, 1.5))
    assert defense_label(ours.model) == "PGD+ours" and defense_label(zoo.model) == "-"
    assert defense_label(dataclasses.replace(ours.model, alpha_train=0.0)) == "PGD"
    frame = result_table([ours, zoo])
    assert list(frame.columns) == ["Model", "Defense", "alpha_train", "alpha_test", "A_nat", "A_nat_lo", "A_nat_hi",
                                   "A_rob", "A_rob_lo", "A_rob_hi", "A_sa", "A_sa_lo", "A_sa_hi", "A_tr", "A_tr_lo", "A_tr_hi",
                                   "A_wc (wmrbench)", "A_wc (wmrbench)_lo", "A_wc (wmrbench)_hi"]
    assert frame[["Model", "Defense", "alpha_test"]].values.tolist() == [
        ["ours", "PGD+ours", 1.0], ["ours", "PGD+ours", 1.5], ["Zoo2021", "-", 1.0], ["Zoo2021", "-", 1.5]]
    assert frame["A_tr"].tolist()[:2] == [ours.metrics.A_tr[1.0], ours.metrics.A_tr[1.5]]
    console = Console(record=True, width=120)
    print_table(frame, "two results", console)
    text = console.export_text()
    assert "two results" in text and "PGD+ours" in text and f"{ours.metrics.A_nat:.2f}" in text
    assert " Zoo2021  -                   -           1 " in text  # no alpha_train: "-", numbers right-aligned
    assert "A_tr under the weighted attack" in text.splitlines()[-1]  # the legend under the table


def test_the_package_ships_the_papers_tables() -> None:
    ours = paper_tables()
    assert len(ours) == 65 and set(ours["table"]) == {1, 2, 3, 4, 5}


@pytest.mark.slow  # 8 s measured on a loaded 2-core CPU (tests/README.md)
def test_plots_are_written_as_png_and_svg(results: Path, tmp_path: Path) -> None:
    write_result(results, "mnist-run", dataset="mnist", with_records=False)
    plots = make_plots(results)
    names = sorted(p.name for p in (results / "plots").iterdir())
    assert names == sorted(p.name for p in plots.files) == [
        "metrics-digits.png", "metrics-digits.svg", "metrics-mnist.png", "metrics-mnist.svg",
        "weights-trades-a0.png", "weights-trades-a0.svg", "weights-trades-a2.png", "weights-trades-a2.svg"]
    assert plots.warnings == [f"no weights plot for mnist-run: {results / 'mnist-run' / 'records.csv'} is missing"]
    for png in (results / "plots").glob("*.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000  # a drawn figure, not an empty canvas
    svg = (results / "plots" / "metrics-digits.svg").read_text()
    assert "<svg" in svg and "trades-a2" in svg and "trades-a0" in svg  # the legend names the models
    first = {p.name: p.read_bytes() for p in (results / "plots").glob("*.svg")}
    make_plots(results)
    assert {p.name: p.read_bytes() for p in (results / "plots").glob("*.svg")} == first  # no dates, fixed ids


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
def test_plot_one_run_into_a_folder(results: Path, tmp_path: Path) -> None:
    out = invoke("plot", results, "--run", "trades-a2", "--output-dir", tmp_path / "figs")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "metrics-digits.png", "metrics-digits.svg", "weights-trades-a2.png", "weights-trades-a2.svg"]
    out = invoke("plot", results, "--run", "nope", "--output-dir", tmp_path / "other")
    assert out.exit_code == 2 and "no result named nope" in out.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
def test_report_imports_neither_the_engine_nor_the_cli() -> None:
    """The layering rule (README "Layout", pyproject.toml contracts): reports read results, they never run attacks."""
    code = ("import sys, wmrbench.report, wmrbench.report.plots; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'typer' "
            "or m.startswith(('wmrbench.attacks', 'wmrbench.engine', 'wmrbench.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_robustbench_format_writes_one_model_info_json_per_result(results: Path) -> None:
    """RobustBench's model_info fields, exactly as its repository spells them, plus ours."""
    out = invoke("leaderboard", results, "--format", "robustbench")
    assert out.exit_code == 0, out.output
    files = sorted((results / "robustbench").rglob("*.json"))
    assert [f.relative_to(results / "robustbench").as_posix() for f in files] == [
        "digits/Linf/trades-a0.json", "digits/Linf/trades-a2.json"]
    info = json.loads(files[1].read_text())
    assert list(info) == ["link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                          "architecture", "eps", "clean_acc", "reported", "footnote", "unreliable", "wmrbench"]
    a2 = read_summary(results / "trades-a2" / "summary.json")
    assert info["clean_acc"] == f"{a2.metrics.A_nat:.2f}" and info["eps"] == "0.1" and info["dataset"] == "digits"
    assert "autoattack_acc" not in info  # only when AutoAttack ran
    assert info["wmrbench"]["A_sa"]["2"] == f"{a2.metrics.A_sa[2.0]:.2f}"
    assert info["wmrbench"]["protocol"]["Restarts"] == 1 and "PGD-20" in info["footnote"]
