"""``wmrbench reproduce table1``: writes the table; a rerun skips what is finished; an interrupted or
killed reproduction resumes, also from folders copied to another place (another machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import PYTHON, REPO, invoke, run_wmrbench, wait_until
from wmrbench.core.config import number_key
from wmrbench.results.metrics import compute_metrics
from wmrbench.results.records import under_weighted_rule

# --quick with tiny settings: 1-2 epochs of digits, 30 test images, 2 restarts.
TINY = ("reproduce", "table1", "--quick", "--n-examples", "30", "--restarts", "2", "--device", "cpu", "--quiet")
RUNS = ("table1-digits-pgd-a0", "table1-digits-pgd-a0.5", "table1-digits-trades-a0", "table1-digits-trades-a2")


def _outputs(root: Path) -> dict[Path, int]:
    """Every checkpoint and result file under ``root`` with its modification time (ns)."""
    files = [*root.rglob("last.pt"), *root.rglob("metrics.jsonl"), *root.rglob("summary.json"), *root.rglob("records.csv")]
    return {p: p.stat().st_mtime_ns for p in files}


def _epochs(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _history(folder: Path) -> list[dict]:
    """The epochs last.pt holds: the record a resume continues from (a kill can land between
    last.pt and metrics.jsonl, which the next epoch rebuilds from it)."""
    return torch.load(folder / "last.pt", weights_only=True)["history"]


@pytest.mark.slow  # 18 s measured on a loaded 2-core CPU (tests/README.md)
def test_reproduce_writes_the_table_and_a_rerun_skips_what_is_done(tmp_path):
    ck, res = tmp_path / "ck", tmp_path / "res"
    args = (*TINY, "--epochs", "1", "--checkpoint-dir", ck, "--results-dir", res)
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    table = res / "table1-digits"
    csv = pd.read_csv(table / "table1.csv")
    assert list(csv["Defense"]) == ["PGD", "PGD+ours"] * 3 + ["TRADES", "TRADES+ours"] * 3
    assert list(csv["alpha_test"]) == [1.0, 1.0, 1.5, 1.5, 2.0, 2.0] * 2
    assert not any("(paper)" in c for c in csv.columns)  # digits numbers are never put beside MNIST's
    md = (table / "table1.md").read_text()
    assert "NOT the paper's setting" in md and "reference only" in md and "2 restart(s)" in md
    # Every number with its 95% interval; each "+ours" gain paired on the same images, with a verdict.
    assert {"A_rob_lo", "A_rob_hi", "A_sa_lo", "A_tr_hi"} <= set(csv.columns)
    assert (csv["A_sa_lo"] <= csv["A_sa"]).all() and (csv["A_sa"] <= csv["A_sa_hi"]).all()
    claims = md.split("## Does '+ours' beat its baseline?")[1].split("\n## ")[0]
    verdicts = [line for line in claims.splitlines() if line.startswith(("| PGD+ours", "| TRADES+ours"))]
    assert len(verdicts) == 6 and all(
        any(v in line for v in ("holds (significant at 5%)", "holds (not significant)", "does not hold")) for line in verdicts)
    assert all(" ± " in line.split("|")[6] for line in verdicts)  # the A_sa gain with its paired interval
    assert "significant at 5% (paired 95% interval above 0) in" in md
    # Evaluated under the paper's restart rule, and reported under wmrbench's from the same run:
    # the weighted rule's A_sa and A_tr are never higher, its A_nat the same.
    assert "2 restart(s) (start, max-ce rule)" in md and "## Under wmrbench's restart rule (weighted)" in md
    assert "The same attack run under wmrbench's restart rule" in out.stdout
    section = md.split("## Under wmrbench's restart rule (weighted)")[1].split("## The paper's table")[0]
    for run in RUNS:
        records = pd.read_csv(table / run / "records.csv")
        summary = json.loads((table / run / "summary.json").read_text())
        weighted = compute_metrics(under_weighted_rule(records))
        assert weighted.A_nat == summary["metrics"]["A_nat"]
        for alpha, value in weighted.A_sa.items():
            key = number_key(alpha)  # summary.json's name of the alpha
            assert value <= summary["metrics"]["A_sa"][key] + 1e-9 and f"{value:.2f}" in section
            assert weighted.A_tr[alpha] <= summary["metrics"]["A_tr"][key] + 1e-9 and f"{weighted.A_tr[alpha]:.2f}" in section
    records = pd.read_csv(table / RUNS[0] / "records.csv")
    assert "weighted_rule.pgd_correct" in records.columns
    assert {p.name for p in ck.iterdir()} == set(RUNS)
    done = _outputs(tmp_path)
    assert len(done) == 4 * 4

    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("skipped") == 8, again.stdout  # 4 trainings, 4 evaluations
    assert "evaluating" not in again.stdout and "training," not in again.stdout
    assert _outputs(tmp_path) == done  # nothing retrained, nothing re-evaluated
    assert (table / "table1.md").read_text() == md

    # A result whose records no longer match its summary is not a complete result: only it is redone.
    records = table / RUNS[1] / "records.csv"
    records.write_text(records.read_text() + "\n")
    third = invoke(*args)
    assert third.exit_code == 0, third.output
    assert third.stdout.count("evaluating") == 1 and f"{RUNS[1]}: evaluating (its result is not usable" in third.stdout


@pytest.mark.slow  # 27 s measured on a loaded 2-core CPU (tests/README.md)
def test_an_interrupted_reproduction_resumes_from_folders_copied_elsewhere(tmp_path, monkeypatch):
    first, second = tmp_path / "machine1", tmp_path / "machine2"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)  # default, relative folders: checkpoints/ and results/
    out = invoke(*TINY, "--epochs", "2", "--stop-after-epochs", "1")
    assert out.exit_code == 0, out.output
    assert "4 run(s) unfinished" in out.stdout and "run the same command again" in out.stdout
    assert not (first / "results" / "table1-digits" / "table1.md").exists()
    before = {run: _epochs(first / "checkpoints" / run) for run in RUNS}
    assert all(len(h) == 1 for h in before.values())

    shutil.copytree(first / "checkpoints", second / "checkpoints")  # the checkpoints only
    monkeypatch.chdir(second)
    out = invoke(*TINY, "--epochs", "2")
    assert out.exit_code == 0, out.output
    assert out.stdout.count("resuming at epoch 2 of 2") == 4
    for run in RUNS:
        after = _epochs(second / "checkpoints" / run)
        assert [h["epoch"] for h in after] == [1, 2]
        assert after[0] == before[run][0]  # epoch 1 was kept, not trained again
    assert (second / "results" / "table1-digits" / "table1.csv").is_file()


@pytest.mark.slow  # a process of its own, killed and started again: ~40 s on a loaded 2-core CPU
def test_a_killed_reproduction_resumes(tmp_path):
    args = [*TINY, "--epochs", "3"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen([PYTHON, "-m", "wmrbench", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The event, not a deadline: an epoch's checkpoint appears (or the process ends, then
        # the assertions below fail with what it left).
        wait_until(lambda: bool(list(tmp_path.glob("checkpoints/*/last.pt"))) or killed.poll() is not None,
                   "an epoch's checkpoint")
    finally:
        killed.kill()
        killed.wait()
    saved = {p.parent.name: _history(p.parent)[0] for p in tmp_path.glob("checkpoints/*/last.pt")}
    assert saved and all(h["epoch"] < 3 for h in saved.values())

    out = run_wmrbench(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("resuming at epoch") == len(saved)
    for run, first_epoch in saved.items():
        assert _history(tmp_path / "checkpoints" / run)[0] == first_epoch
    assert (tmp_path / "results" / "table1-digits" / "table1.md").is_file()


def test_the_paper_is_beside_each_number_with_the_difference_and_the_claim_is_checked(digits_results):
    # The MNIST table's layout, on real results (digits TRADES and TRADES+ours, alpha_train 2):
    # paper cells matched by defense, alpha_train and alpha_test; none where the paper has none.
    from wmrbench.results.records import read_summary
    from wmrbench.report.paper import paper_tables
    from wmrbench.report.reproduction import (
        Reproduction,
        check_claims,
        comparison_table,
        to_markdown_report,
    )

    summaries = [read_summary(p) for p in sorted(digits_results.rglob("summary.json"))]
    paper = paper_tables()
    table = comparison_table(summaries, paper[paper["table"] == 1])
    assert list(table["Defense"]) == ["TRADES", "TRADES+ours"] * 3
    base = table[(table["Defense"] == "TRADES") & (table["alpha_test"] == 1.0)].iloc[0]
    assert base["A_rob (paper)"] == 95.59 and base["A_rob diff"] == pytest.approx(base["A_rob"] - 95.59)
    ours = table[(table["Defense"] == "TRADES+ours") & (table["alpha_test"] == 2.0)].iloc[0]
    assert (ours["A_sa (paper)"], ours["A_tr (paper)"]) == (66.71, 65.61)
    assert table.loc[table["alpha_test"] == 0.0, "A_tr (paper)"].isna().all()  # the paper has no alpha_test 0
    # Whether the paper's number lies inside our 95% interval, said per metric.
    inside = "yes" if ours["A_sa_lo"] <= 66.71 <= ours["A_sa_hi"] else "no"
    assert f"A_sa {inside}" in ours["paper in our 95% CI"]

    claims = check_claims(table)
    at2 = claims.table[claims.table["alpha_test"] == 2.0].iloc[0]
    assert at2["A_sa gain (paper)"] == pytest.approx(66.71 - 52.15)
    assert at2["A_tr gain"] == pytest.approx(ours["A_tr"] - table[(table["Defense"] == "TRADES") & (table["alpha_test"] == 2.0)].iloc[0]["A_tr"])
    assert claims.sa_higher[1] == 3 and claims.tr_higher[1] == 3
    md = to_markdown_report(Reproduction("t", ["n"], table, claims))
    assert "A_rob (paper)" in md and "A_rob diff" in md and "A_sa gain (paper)" in md and "at every alpha_test" in md


@pytest.mark.slow  # 35 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_reproduction_stopped_inside_an_evaluation_resumes_its_saved_batches(tmp_path, monkeypatch):
    from wmrbench.evaluation.partial import PartialStore

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    common = (*TINY, "--epochs", "1", "--n-examples", "40")
    out = invoke(*common, "--checkpoint-dir", whole / "ck", "--results-dir", whole / "res")
    assert out.exit_code == 0, out.output

    # The same reproduction, stopped (as by Ctrl-C) right after its first evaluation saved a batch.
    save = PartialStore.save

    def save_then_stop(self, number, columns):
        save(self, number, columns)
        raise KeyboardInterrupt

    monkeypatch.setattr(PartialStore, "save", save_then_stop)
    shutil.copytree(whole / "ck", stopped / "ck")  # the trainings are done: only evaluation is left
    args = (*common, "--checkpoint-dir", stopped / "ck", "--results-dir", stopped / "res")
    out = invoke(*args)
    assert out.exit_code != 0 and "Traceback" not in out.output, out.output
    first = stopped / "res" / "table1-digits" / RUNS[0]
    assert (first / ".partial").is_dir() and not (first / "summary.json").exists()

    monkeypatch.setattr(PartialStore, "save", save)
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    for run in RUNS:
        assert (stopped / "res" / "table1-digits" / run / "records.csv").read_bytes() == (
            whole / "res" / "table1-digits" / run / "records.csv").read_bytes()
    assert not (first / ".partial").exists()
