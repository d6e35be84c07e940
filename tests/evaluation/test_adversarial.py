"""`attack` writes one weights_only-readable file; `evaluate --adversarial` scores it without attacking."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import invoke
from wmrbench.results.records import read_records

SETTINGS = ("--n-examples", "40", "--steps", "3", "--alpha-test", "1,2", "--batch-size", "16")


@pytest.fixture(scope="module")
def attacked(digits_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(adversarial file, results folder) of an attack on the TRADES+ours digits model."""
    results = tmp_path_factory.mktemp("attack")
    out = invoke("attack", "--checkpoint", digits_runs["trades-a2"], *SETTINGS, "--results-dir", results, "--quiet")
    assert out.exit_code == 0, out.output
    assert "weighted PGD, alpha 2" in out.stdout
    return results / "trades-a2" / "adversarial.pt", results


def test_file_holds_points_labels_indices_margins_weights_and_config(attacked) -> None:
    path, _ = attacked
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == "wmrbench-adversarial-v1"
    config = json.loads(obj["config"])
    assert config["split"] == "test" and config["source"]["kind"] == "checkpoint"
    assert config["eval_config"]["alpha_test"] == [1.0, 2.0] and config["eval_config"]["attack"]["steps"] == 3
    n = 40
    assert obj["index"].tolist() == list(range(n)) and obj["label"].shape == (n,)
    assert obj["x"].shape == (n, 1, 8, 8)
    assert set(obj["attacks"]) == {"pgd", "1", "2"}
    eps = config["eval_config"]["attack"]["eps"]
    for key, attack in obj["attacks"].items():
        assert attack["x_adv"].shape == obj["x"].shape
        assert (attack["x_adv"] - obj["x"]).abs().max() <= eps + 1e-6
        assert attack["weight"].sum().item() == pytest.approx(1.0, abs=1e-12)
        expected = torch.exp(-attack["alpha"] * attack["margin"].double())
        assert torch.allclose(attack["weight"], expected / expected.sum())
    assert obj["attacks"]["pgd"]["alpha"] == 0.0
    assert torch.all(obj["attacks"]["pgd"]["weight"] == 1.0 / n)
    # The weighted attack moves mass to low margins: its weight sits on misclassified points.
    heavy = obj["attacks"]["2"]
    assert heavy["weight"][~heavy["correct"]].sum() > (~heavy["correct"]).double().mean()


def test_adversarial_round_trip_gives_evaluates_metrics(attacked, digits_runs, tmp_path: Path) -> None:
    path, _ = attacked
    scored = invoke("evaluate", "--adversarial", path, "--batch-size", "16", "--results-dir", tmp_path / "scored", "--quiet")
    assert scored.exit_code == 0, scored.output
    fresh = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], *SETTINGS, "--results-dir", tmp_path / "fresh", "--quiet")
    assert fresh.exit_code == 0, fresh.output
    a = json.loads((tmp_path / "scored" / "trades-a2" / "summary.json").read_text())
    b = json.loads((tmp_path / "fresh" / "trades-a2" / "summary.json").read_text())
    assert a["metrics"] == b["metrics"]
    assert {**a["config"], "results_dir": None} == {**b["config"], "results_dir": None}
    assert a["adversarial"]["file"] == str(path)
    ra = read_records(tmp_path / "scored" / "trades-a2" / "records.csv")
    rb = read_records(tmp_path / "fresh" / "trades-a2" / "records.csv")
    pd.testing.assert_frame_equal(ra, rb)
    assert 0 < b["metrics"]["A_rob"] < b["metrics"]["A_nat"]  # a real attack on a real model


def test_transfer_to_another_model_gets_its_own_name(attacked, digits_runs, tmp_path: Path) -> None:
    path, _ = attacked
    out = invoke("evaluate", "--adversarial", path, "--checkpoint", digits_runs["trades-a0"],
                 "--results-dir", tmp_path, "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "trades-a0-from-trades-a2" / "summary.json").read_text())
    assert summary["model"]["checkpoint"] == str(digits_runs["trades-a0"])
    assert summary["adversarial"]["attacked"]["checkpoint"] == str(digits_runs["trades-a2"])


def test_attack_settings_do_not_apply_when_scoring(attacked, tmp_path: Path) -> None:
    path, _ = attacked
    out = invoke("evaluate", "--adversarial", path, "--eps", "0.2", "--steps", "5", "--results-dir", tmp_path)
    assert out.exit_code == 2
    assert "--eps, --steps: the attack is already in" in out.stderr
    out = invoke("evaluate", "--adversarial", path, "--alpha-test", "3", "--results-dir", tmp_path)
    assert out.exit_code == 2 and "holds weighted attacks for alpha_test 1, 2; not for 3" in out.stderr
    assert not any(tmp_path.iterdir())


def test_tampered_or_foreign_files_are_refused(attacked, tmp_path: Path) -> None:
    path, _ = attacked
    obj = torch.load(path, weights_only=True)
    obj["attacks"]["1"]["x_adv"] = (obj["x"] + 0.5).clamp(0, 1)  # far outside the eps ball
    bad = tmp_path / "tampered.pt"
    torch.save(obj, bad)
    out = invoke("evaluate", "--adversarial", bad, "--results-dir", tmp_path / "r")
    assert out.exit_code == 2
    assert out.stderr.strip() == f"Error: {bad}: attack 1 leaves the eps=0.1 ball around x or [0, 1]"
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.zeros(3)}, foreign)
    out = invoke("evaluate", "--adversarial", foreign, "--results-dir", tmp_path / "r")
    assert out.exit_code == 2 and "is not a wmrbench adversarial file" in out.stderr
    assert not (tmp_path / "r").exists()


def test_attack_needs_exactly_one_model(tmp_path: Path) -> None:
    out = invoke("attack", "--dataset", "digits", "--results-dir", tmp_path)
    assert out.exit_code == 2 and "say which model to attack" in out.stderr
