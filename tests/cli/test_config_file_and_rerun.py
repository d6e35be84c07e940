"""--config FILE.toml sets any option of any command (the command line wins), and `rerun`
replays a result's or a checkpoint's exact configuration and says whether it matches."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import invoke

TOML = """
# shared by every command
device = "cpu"
alpha-test = [1, 2]

[train]
epochs = 1
steps = 1
batch-size = 256
alpha-train = 2

[evaluate]
n-examples = 24
steps = 2
"""


def test_a_toml_file_sets_options_and_the_command_line_wins(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text(TOML)
    out = invoke("train", "--config", config, "--checkpoint-dir", tmp_path / "ck", "--run", "t", "--quiet")
    assert out.exit_code == 0, out.output
    assert "  alpha_train: 2.0" in out.stdout and "  epochs: 1" in out.stdout and "  attack.steps: 1" in out.stdout
    checkpoint = tmp_path / "ck" / "t" / "last.pt"
    out = invoke("evaluate", "--config", config, "--checkpoint", checkpoint, "--steps", "3",  # the command line wins
                 "--results-dir", tmp_path / "r", "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "r" / "t" / "summary.json").read_text())
    assert summary["config"]["attack"]["steps"] == 3 and summary["config"]["n_examples"] == 24
    assert summary["config"]["alpha_test"] == [1.0, 2.0] and summary["config"]["device"] == "cpu"


def test_bad_config_files_are_one_line(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nepoch = 3\n")
    out = invoke("train", "--config", typo, "--checkpoint-dir", tmp_path / "ck")
    assert out.exit_code == 2 and "train has no option 'epoch'; its options:" in out.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("epochs = [1,\n")
    out = invoke("train", "--config", broken, "--checkpoint-dir", tmp_path / "ck")
    assert out.exit_code == 2 and "is not valid TOML" in out.stderr
    out = invoke("train", "--config", tmp_path / "missing.toml")
    assert out.exit_code == 2
    assert not (tmp_path / "ck").exists()


def test_rerun_of_a_result_gives_identical_records(tmp_path: Path, digits_runs) -> None:
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a2"], "--n-examples", "30", "--steps", "3",
                 "--restarts", "2", "--alpha-test", "1,2", "--device", "cpu", "--results-dir", tmp_path, "--quiet")
    assert out.exit_code == 0, out.output
    out = invoke("rerun", tmp_path / "trades-a2" / "summary.json", "--quiet")
    assert out.exit_code == 0, out.output
    assert "same as" in out.stdout
    first = (tmp_path / "trades-a2" / "records.csv").read_bytes()
    assert (tmp_path / "trades-a2-rerun" / "records.csv").read_bytes() == first
    rerun = json.loads((tmp_path / "trades-a2-rerun" / "summary.json").read_text())
    assert rerun["config"]["attack"]["restarts"] == 2 and rerun["config"]["n_examples"] == 30


def test_rerun_says_when_numbers_differ(tmp_path: Path, digits_runs) -> None:
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a0"], "--n-examples", "20", "--steps", "2",
                 "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path, "--quiet")
    assert out.exit_code == 0, out.output
    summary = tmp_path / "trades-a0" / "summary.json"
    edited = json.loads(summary.read_text())
    edited["metrics"]["A_rob"] = 12.5  # as if the result had been produced by another model
    summary.write_text(json.dumps(edited))
    out = invoke("rerun", summary, "--run", "again", "--quiet")
    assert out.exit_code == 1 and "differs from" in out.stdout and "A_rob 12.5 ->" in out.stdout


def test_rerun_of_a_checkpoint_trains_the_same_weights(tmp_path: Path) -> None:
    out = invoke("train", "--epochs", "1", "--steps", "1", "--batch-size", "256", "--device", "cpu",
                 "--checkpoint-dir", tmp_path, "--run", "orig", "--quiet")
    assert out.exit_code == 0, out.output
    out = invoke("rerun", tmp_path / "orig" / "last.pt", "--quiet")
    assert out.exit_code == 0, out.output
    assert "same as" in out.stdout and (tmp_path / "orig-rerun" / "last.pt").is_file()


def test_a_shared_key_no_command_has_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("alpha-tset = [1, 2]\n")
    out = invoke("evaluate", "--config", config, "--checkpoint", tmp_path / "x.pt")
    assert out.exit_code == 2 and "no command has an option 'alpha-tset'" in out.stderr
