"""Training seeds end to end, through the real Typer app on digits: ``train --seeds 0,1
--alpha-train 0,2`` gives four runs, each the plain ``--seed``/``--run`` run; ``evaluate`` of a
glob gives four results on the same examples; ``compare`` of two groups prints the two-level
interval, the runs per side and the verdict; ``--resume`` does not retrain a finished seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import assert_one_line_error, invoke

BRIEF = ("--dataset", "digits", "--defense", "trades", "--epochs", "1", "--n-train", "128", "--device", "cpu", "--quiet")


def _train(ck: Path, *extra: str):
    return invoke("train", *BRIEF, "--checkpoint-dir", ck, *extra)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow  # seven one-epoch trainings, six 48-image evaluations: 24-220 s measured on the shared 2-core CPU (load-bound)
def test_seeds_train_evaluate_and_compare_as_groups(tmp_path: Path) -> None:
    ck, res = tmp_path / "ck", tmp_path / "res"
    out = _train(ck, "--seeds", "0,1", "--alpha-train", "0,2", "--run", "d")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in ck.iterdir()) == ["d-a0-s0", "d-a0-s1", "d-a2-s0", "d-a2-s1"]
    saved = torch.load(ck / "d-a2-s1" / "last.pt", map_location="cpu", weights_only=True)["config"]
    assert (saved["seed"], saved["alpha_train"], saved["run"]) == (1, 2.0, "d-a2-s1")

    # Each seed's run is the run a plain train --seed --run gives, bit for bit (CPU).
    alone = _train(tmp_path / "alone", "--seed", "1", "--alpha-train", "2", "--run", "d-a2-s1")
    assert alone.exit_code == 0, alone.output
    ours, theirs = _weights(ck / "d-a2-s1" / "last.pt"), _weights(tmp_path / "alone" / "d-a2-s1" / "last.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)

    # One evaluate of a quoted glob: one result per checkpoint, all on the same examples.
    out = invoke("evaluate", "--checkpoint", f"{ck}/d-a*-s*/last.pt", "--n-examples", "48", "--steps", "3",
                 "--alpha-test", "1,2", "--device", "cpu", "--results-dir", res, "--quiet")
    assert out.exit_code == 0, out.output
    folders = sorted(p.name for p in res.iterdir())
    assert folders == ["d-a0-s0", "d-a0-s1", "d-a2-s0", "d-a2-s1"]
    index = [pd.read_csv(res / f / "records.csv")["index"].tolist() for f in folders]
    assert all(i == index[0] for i in index) and len(index[0]) == 48

    out = invoke("compare", f"{res}/d-a2-s*", f"{res}/d-a0-s*", "--output", tmp_path / "groups.csv", "--resamples", "300")
    assert out.exit_code == 0, out.output
    assert "(2 runs)" in out.stdout and "two-level interval" in out.stdout and "seeds pair up" in out.stdout
    table = pd.read_csv(tmp_path / "groups.csv")
    assert set(table["runs A"]) == {2} and set(table["test"]) == {"paired t over 2 seeds"}
    for _, row in table.iterrows():
        assert row["A - B_lo"] <= row["A - B"] + 1e-9 and row["A - B"] <= row["A - B_hi"] + 1e-9
        assert row["verdict"].endswith("paired t over 2 seeds)")
    rob = table[table["Metric"] == "A_rob"].iloc[0]
    a = [json.loads((res / f / "summary.json").read_text())["metrics"]["A_rob"] for f in ("d-a2-s0", "d-a2-s1")]
    assert rob["A"] == pytest.approx(sum(a) / 2)

    # One result each: the paired table, whose verdict says what it covers.
    out = invoke("compare", res / "d-a2-s0", res / "d-a0-s0")
    assert out.exit_code == 0, out.output
    assert "training run each" in out.stdout and "McNemar" in out.stdout

    # The attack's seeds of `evaluate --seeds` are runs too: one folder each side, two runs each.
    for run in ("d-a2-s0", "d-a0-s0"):
        out = invoke("evaluate", "--checkpoint", ck / run / "last.pt", "--n-examples", "48", "--steps", "3",
                     "--alpha-test", "1,2", "--device", "cpu", "--results-dir", tmp_path / "attacks", "--quiet",
                     "--seeds", "0,1")
        assert out.exit_code == 0, out.output
    out = invoke("compare", tmp_path / "attacks" / "d-a2-s0", tmp_path / "attacks" / "d-a0-s0", "--resamples", "300")
    assert out.exit_code == 0, out.output
    assert "(2 runs)" in out.stdout and "seeds pair up" in out.stdout and "McNemar" not in out.stdout

    # A group whose runs differ in anything but the seed is refused, by name.
    out = invoke("compare", f"{res}/d-a*-s0", f"{res}/d-a*-s1")
    assert_one_line_error(out, "runs d-a0-s0 and d-a2-s0 differ in --alpha-train (0 against 2)")
    # ... and so are results on other examples.
    shutil.copytree(res / "d-a0-s1", tmp_path / "short")
    records = pd.read_csv(tmp_path / "short" / "records.csv")
    (tmp_path / "short" / "summary.json").unlink()
    records.iloc[:-1].to_csv(tmp_path / "short" / "records.csv", index=False)
    out = invoke("compare", f"{res}/d-a0-s0,{tmp_path / 'short'}", f"{res}/d-a2-s*")
    assert_one_line_error(out, "hold different test examples (48 examples against 47)")

    # --resume trains the seed that is missing and leaves the finished ones as they are.
    before = {p: p.read_bytes() for p in ck.glob("*/last.pt")}
    out = _train(ck, "--seeds", "0,1,2", "--alpha-train", "0,2", "--run", "d", "--resume")
    assert out.exit_code == 0, out.output
    assert all(p.read_bytes() == data for p, data in before.items())
    assert (ck / "d-a2-s2" / "last.pt").is_file() and (ck / "d-a0-s2" / "last.pt").is_file()


def test_seeds_refusals_are_one_line(tmp_path: Path) -> None:
    out = _train(tmp_path, "--seeds", "0,1", "--seed", "3")
    assert_one_line_error(out, "--seed and --seeds both given")
    out = _train(tmp_path, "--seeds", "0,0")
    assert_one_line_error(out, "--seeds 0,0: a seed is repeated")
    out = invoke("evaluate", "--checkpoint", f"{tmp_path}/nothing-*/last.pt", "--device", "cpu")
    assert_one_line_error(out, "no file matches")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # eight one-epoch digits runs and their 48-image evaluations: 82-374 s measured on the shared 2-core CPU (load-bound)
def test_reproduce_table1_with_two_seeds_averages_them_and_tests_gains_over_seeds(tmp_path: Path) -> None:
    out = invoke("reproduce", "table1", "--quick", "--train-seeds", "2", "--epochs", "1", "--n-examples", "48",
                 "--restarts", "1", "--device", "cpu", "--checkpoint-dir", tmp_path / "ck", "--results-dir",
                 tmp_path / "res", "--quiet")
    assert out.exit_code == 0, out.output
    runs = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert len(runs) == 8 and {r[-3:] for r in runs} == {"-s0", "-s1"}
    table = tmp_path / "res" / "table1-digits"
    text = (table / "table1.md").read_text()
    assert "2 seeds per model" in text and "paired t over 2 seeds" in text
    assert "(paired t over 2 seeds)" in out.stdout
    frame = pd.read_csv(table / "table1.csv")
    row = frame[(frame["Defense"] == "TRADES+ours") & (frame["alpha_test"] == 2)].iloc[0]
    seeds = [json.loads((table / f"table1-digits-trades-a2-s{s}" / "summary.json").read_text())["metrics"]["A_rob"]
             for s in (0, 1)]
    assert row["A_rob"] == pytest.approx(sum(seeds) / 2)  # the row is the mean over its seeds


@pytest.mark.slow  # fourteen one-epoch digits runs and their PGD evaluations on 16 images: 248 s measured on the loaded 2-core CPU
def test_reproduce_family_with_two_seeds_averages_them(tmp_path: Path) -> None:
    out = invoke("reproduce", "family", "--quick", "--train-seeds", "2", "--epochs", "1", "--n-examples", "16",
                 "--attacks", "pgd", "--device", "cpu", "--checkpoint-dir", tmp_path / "ck", "--results-dir",
                 tmp_path / "res", "--quiet")
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "ck").iterdir())) == 14
    table = tmp_path / "res" / "family-digits"
    assert "2 training seeds per model (0, 1)" in (table / "family.md").read_text()
    frame = pd.read_csv(table / "family.csv")
    row = frame[(frame["Defense"] == "TRADES+ours") & (frame["alpha_test"] == 2)].iloc[0]
    seeds = [json.loads((table / f"family-digits-trades-a2-s{s}-pgd" / "summary.json").read_text())["metrics"]["A_nat"]
             for s in (0, 1)]
    assert row["A_nat"] == pytest.approx(sum(seeds) / 2)
