"""Each reweighting defense trains and evaluates through the CLI on digits (tiny epochs), keeps
best.pt, writes TensorBoard, resumes across its burn-in exactly, reruns identically and trains
under torchrun; "+ours" options are refused for them in one line; ``reproduce family`` writes
its table and a rerun skips what is done."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import HANG_S, REPO, invoke
from wmrbench.results.comparison import compare_records
from wmrbench.results.records import RECORDS_NAME, read_records

FAMILY = ("mart", "gairat", "mail-at", "mail-trades")
TINY = ("--epochs", "2", "--burn-in", "1", "--steps", "2", "--batch-size", "256", "--device", "cpu", "--quiet")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("defense", FAMILY)
def test_each_defense_trains_and_evaluates_through_the_cli(tmp_path: Path, defense: str) -> None:
    ck = tmp_path / "ck"
    try:
        import tensorboard  # noqa: F401  the optional extra: its weights' histogram per defense
        board: tuple = ("--tensorboard", tmp_path / "tb")
    except ImportError:
        board = ()
    out = invoke("train", "--defense", defense, *TINY, "--eval-every", "1", "--val-size", "64",
                 "--checkpoint-dir", ck, "--run", "r", *board)
    assert out.exit_code == 0, out.output
    if board:
        assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert f"defense: {defense}" in out.stdout and "preset note:" in out.stdout
    saved = torch.load(ck / "r" / "last.pt", weights_only=True)
    assert saved["config"]["defense"] == defense and saved["config"]["burn_in"] == 1
    assert (ck / "r" / "best.pt").is_file()
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert all(h["loss"] > 0 for h in saved["history"])
    res = tmp_path / "res"
    ev = invoke("evaluate", "--checkpoint", ck / "r" / "last.pt", "--n-examples", "16", "--steps", "2",
                "--device", "cpu", "--results-dir", res, "--run", "e", "--quiet")
    assert ev.exit_code == 0, ev.output
    summary = json.loads((res / "e" / "summary.json").read_text())
    assert summary["model"]["defense"] == defense
    assert defense.upper() in ev.stdout  # the table's Defense column names it


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["gairat", "mail-trades"])
def test_resume_across_the_burn_in_equals_one_run_and_rerun_agrees(tmp_path: Path, defense: str) -> None:
    """Epoch 1 is burn-in, epoch 2 reweights: stopping in between and resuming gives the same
    weights as one uninterrupted run; ``rerun`` of the checkpoint finds no difference."""
    one = ("train", "--defense", defense, *TINY, "--checkpoint-dir", tmp_path / "a", "--run", "r")
    assert invoke(*one).exit_code == 0
    two = ("train", "--defense", defense, *TINY, "--checkpoint-dir", tmp_path / "b", "--run", "r")
    assert invoke(*two, "--stop-after-epochs", "1").exit_code == 0
    out = invoke(*two, "--resume")
    assert out.exit_code == 0, out.output
    a, b = _weights(tmp_path / "a" / "r" / "last.pt"), _weights(tmp_path / "b" / "r" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    history = torch.load(tmp_path / "a" / "r" / "last.pt", weights_only=True)["history"]
    assert history[0]["mean_weight"] == pytest.approx(1.0)  # burn-in: unit weights
    if defense == "mail-trades":  # GAIRAT's weights have mean 1 by construction; MAIL's do not
        assert history[1]["mean_weight"] != pytest.approx(1.0, abs=1e-3)
    rerun = invoke("rerun", tmp_path / "a" / "r" / "last.pt", "--quiet")
    assert rerun.exit_code == 0, rerun.output
    assert "same as" in rerun.stdout and "every weight" in rerun.stdout and "differs" not in rerun.stdout, rerun.stdout


def test_alpha_train_and_weight_options_are_refused_for_the_family(tmp_path: Path) -> None:
    for extra in (("--alpha-train", "1"), ("--normalize-weights",), ("--alpha-train", "0,1")):
        out = invoke("train", "--defense", "gairat", *TINY, *extra, "--checkpoint-dir", tmp_path)
        assert out.exit_code == 2, out.output
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "pgd and trades only" in lines[0]
    assert not any(tmp_path.iterdir())  # nothing half-written
    out = invoke("train", "--defense", "gairat", *TINY, "--steps", "1", "--checkpoint-dir", tmp_path)
    assert out.exit_code == 2 and "at least 2 training attack steps" in out.stderr
    out = invoke("train", "--defense", "mart", "--dataset", "tinyimagenet", "--checkpoint-dir", tmp_path)
    assert out.exit_code == 2 and out.stderr.count("\n") == 1 and "no preset" in out.stderr


@pytest.mark.slow
def test_gairat_trains_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "wmrbench",
           "--", "train", "--defense", "gairat", *TINY, "--checkpoint-dir", str(tmp_path / "ck"), "--run", "r"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    saved = torch.load(tmp_path / "ck" / "r" / "last.pt", weights_only=True)
    assert [h["processes"] for h in saved["history"]] == [2, 2]


@pytest.mark.slow
def test_reproduce_family_writes_one_table_and_a_rerun_skips_what_is_done(tmp_path: Path) -> None:
    args = ("reproduce", "family", "--quick", "--epochs", "2", "--n-examples", "12", "--attacks", "pgd,apgd-ce",
            "--device", "cpu", "--quiet", "--checkpoint-dir", tmp_path / "ck", "--results-dir", tmp_path / "res")
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "res" / "family-digits" / "family.csv")
    labels = ["PGD", "TRADES", "MART", "GAIRAT", "MAIL-TRADES", "PGD+ours", "TRADES+ours"]
    assert list(table["Defense"]) == [label for label in labels for _ in range(3)]
    assert {"A_rob PGD", "A_rob APGD-CE", "A_sa", "A_tr", "A_wc"} <= set(table.columns)
    md = (tmp_path / "res" / "family-digits" / "family.md").read_text()
    assert "NOT the paper's setting" in md
    # Each gain with its paired interval, the same as `wmrbench compare` on the two results' records.
    gains = md.split("## Differences from the unweighted base (points, 95% paired interval)")[1]
    rows = [line for line in gains.splitlines() if line.startswith("| TRADES+ours")]
    assert len(rows) == 3 and all(line.count("[") >= 6 for line in rows)
    res = tmp_path / "res" / "family-digits"
    compared = compare_records("ours", read_records(res / "family-digits-trades-a2-pgd" / RECORDS_NAME),
                               "base", read_records(res / "family-digits-trades-a0-pgd" / RECORDS_NAME), alphas=[2.0])
    a_sa2 = next(d for d in compared.differences if d.metric == "A_sa" and d.alpha == 2.0)
    assert f"[{a_sa2.lo:.2f}, {a_sa2.hi:.2f}]" in rows[2]
    # GAIRAT's and MAIL's burn-in scale with the epochs: 1 of 2 here (15 and 18 of digits' 30)
    cfg = torch.load(tmp_path / "ck" / "family-digits-gairat-a0" / "last.pt", weights_only=True)["config"]
    assert cfg["burn_in"] == 1 and cfg["epochs"] == 2
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("skipped") == 7 + 14 and "evaluating" not in again.stdout


@pytest.mark.parametrize("defense", ["gairat", "mail-at", "mail-trades"])
def test_train_refuses_a_burn_in_that_covers_every_epoch(tmp_path: Path, defense: str) -> None:
    from tests.conftest import assert_one_line_error

    out = invoke("train", "--defense", defense, "--dataset", "digits", "--epochs", "3", "--burn-in", "15",
                 "--device", "cpu", "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert_one_line_error(out, "--burn-in 15 leaves no epoch of 3 (--epochs)", "--burn-in below 3")
    assert not (tmp_path / "ck").exists()


@pytest.mark.slow  # 14 s measured on the loaded 2-core machine: two 2-epoch trainings of 2 mini-batches
def test_a_short_gairat_run_is_not_pgd_at(tmp_path: Path) -> None:
    """train --defense gairat --epochs 2 gave weights bit-identical to --defense pgd (burn-in 15 of 2)."""
    tiny = ("--dataset", "digits", "--epochs", "2", "--steps", "2", "--max-steps", "2", "--batch-size", "64",
            "--device", "cpu", "--quiet", "--checkpoint-dir", tmp_path / "ck")
    for defense in ("pgd", "gairat"):
        out = invoke("train", "--defense", defense, "--run", defense, *tiny)
        assert out.exit_code == 0, out.output
    saved = torch.load(tmp_path / "ck" / "gairat" / "last.pt", weights_only=True)
    assert saved["config"]["burn_in"] == 1
    pgd, gairat = _weights(tmp_path / "ck" / "pgd" / "last.pt"), saved["model"]
    assert any(not torch.equal(pgd[k], gairat[k]) for k in pgd)
