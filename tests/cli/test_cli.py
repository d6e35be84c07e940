"""The real Typer app through its test runner: the loop end to end, and one-line errors."""

from __future__ import annotations

import json
import pickle

import pytest
from typer.testing import CliRunner

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, require_mnist
from wmrbench.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def train_tiny(tmp_path, *extra):
    return invoke("train", "--dataset", "digits", "--epochs", "1", "--steps", "2", "--batch-size", "256",
                  "--device", "cpu", "--checkpoint-dir", tmp_path / "ck", "--quiet", *extra)


def test_train_then_evaluate(tmp_path):
    result = train_tiny(tmp_path, "--alpha-train", "2", "--run", "tiny")
    assert result.exit_code == 0, result.output
    checkpoint = tmp_path / "ck" / "tiny" / "last.pt"
    assert checkpoint.is_file()
    result = invoke("evaluate", "--checkpoint", checkpoint, "--steps", "3", "--alpha-test", "0,1,2",
                    "--n-examples", "50", "--results-dir", tmp_path / "res", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert "TRADES+ours" in result.output and "A_tr" in result.output
    summary = json.loads((tmp_path / "res" / "tiny" / "summary.json").read_text())
    assert summary["config"]["dataset"] == "digits"  # taken from the checkpoint
    assert summary["config"]["attack"]["steps"] == 3 and summary["config"]["attack"]["eps"] == 0.1
    assert summary["model"]["alpha_train"] == 2.0 and summary["metrics"]["n_examples"] == 50
    assert {"wmrbench", "torch", "python", "git_commit"} <= summary["versions"].keys()
    m = summary["metrics"]
    assert m["A_sa"]["0"] == m["A_tr"]["0"] == m["A_rob"]
    header = (tmp_path / "res" / "tiny" / "records.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["index", "label", "clean_correct", "clean_margin", "pgd_correct", "pgd_margin"]
    assert "tr_correct@1" in header and "tr_margin@2" in header


def test_stop_and_resume_through_the_cli(tmp_path):
    assert train_tiny(tmp_path, "--epochs", "2", "--stop-after-epochs", "1").exit_code == 0
    lines = (tmp_path / "ck" / "digits-trades-a0" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    result = invoke("train", "--epochs", "2", "--resume", "--checkpoint-dir", tmp_path / "ck", "--quiet")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "ck" / "digits-trades-a0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_help_explains_every_option():
    for command in ("train", "evaluate", "demo"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "--alpha" in result.output
    assert "alpha_test" in invoke("evaluate", "--help").output.replace("-", "_")


class Payload:
    """An arbitrary Python object: loading with weights_only=True must refuse to unpickle it."""


def bad_checkpoints(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    evil = tmp_path / "evil.pt"
    import torch

    torch.save({"x": Payload()}, evil, pickle_module=pickle)
    return corrupt, evil


ERROR_CASES = {
    "unknown dataset": ("train", "--dataset", "svhn"),
    "unknown defense": ("train", "--defense", "free-at"),  # mart is a registered defense
    "unknown arch": ("train", "--arch", "vit_huge"),
    "negative alpha_train": ("train", "--alpha-train", "-1"),
    "eps above 1": ("train", "--eps", "1.5"),
    "negative eps": ("train", "--eps", "-0.1"),
    "missing checkpoint": ("evaluate", "--checkpoint", "nowhere.pt"),
    "negative alpha_test": ("evaluate", "--checkpoint", "{ck}", "--alpha-test", "1,-2"),
    "bad alpha_test": ("evaluate", "--checkpoint", "{ck}", "--alpha-test", "1,x"),
    "eps out of range": ("evaluate", "--checkpoint", "{ck}", "--eps", "2"),
    "evaluate unknown dataset": ("evaluate", "--checkpoint", "{ck}", "--dataset", "imagenet21k"),
    "corrupt checkpoint": ("evaluate", "--checkpoint", "{corrupt}", "--arch", "digitsnet", "--dataset", "digits"),
    "pickled object": ("evaluate", "--checkpoint", "{evil}", "--arch", "digitsnet", "--dataset", "digits"),
    "plain state_dict without arch": ("evaluate", "--checkpoint", "{mnist}", "--dataset", "mnist"),
    "checkpoint does not fit arch": ("evaluate", "--checkpoint", "{mnist}", "--arch", "resnet18", "--dataset", "mnist"),
    "model does not fit data": ("evaluate", "--checkpoint", "{mnist}", "--arch", "smallcnn", "--dataset", "digits"),
    "paper protocol on a data set the paper lacks": ("evaluate", "--checkpoint", "{ck}", "--protocol", "paper"),
    "unknown protocol": ("evaluate", "--checkpoint", "{ck}", "--protocol", "authors"),
    "unknown norm": ("evaluate", "--checkpoint", "{ck}", "--norm", "l1"),
    "unknown restart-from": ("attack", "--checkpoint", "{ck}", "--restart-from", "best"),
    "unknown padding mode": ("train", "--padding-mode", "edge"),
    "mnist missing offline": ("evaluate", "--checkpoint", "{mnist}", "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", "{empty}"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    assert train_tiny(tmp, "--run", "t").exit_code == 0
    return tmp / "ck" / "t" / "last.pt"


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, trained, monkeypatch):
    args = ERROR_CASES[case]
    if any("{mnist}" in a for a in args):
        require_mnist()
    corrupt, evil = bad_checkpoints(tmp_path)
    (tmp_path / "empty").mkdir()
    values = dict(ck=trained, corrupt=corrupt, evil=evil, mnist=MNIST_CHECKPOINT, empty=tmp_path / "empty")
    args = [a.format(**values) for a in args]
    monkeypatch.chdir(tmp_path)  # default checkpoints/ and results/ would land here
    result = invoke(*args, "--device", "cpu", "--quiet")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()


def test_error_messages_say_what_to_do(tmp_path):
    out = invoke("train", "--dataset", "svhn").output
    assert "svhn" in out and "digits" in out and "mnist" in out
    require_mnist()
    # Its own results folder: a user's results/trades_mnist_smallcnn must neither change this
    # test's outcome nor be touched by it.
    results = tmp_path / "results"
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--data-dir", tmp_path, "--results-dir", results).output
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in out
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "resnet18", "--dataset", "mnist",
                 "--data-dir", MNIST_DIR, "--results-dir", results).output
    assert "does not fit" in out


@pytest.mark.parametrize("command", ["train", "evaluate", "attack", "demo", "leaderboard", "plot", "models"])
def test_help_explains_every_option_and_shows_no_type_after_flags(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output  # flags take no value
    options = [line for line in result.output.splitlines() if line.lstrip("│ ").startswith("--")]
    assert options and all(len(line.split()) > 3 for line in options)  # every option has its help text
