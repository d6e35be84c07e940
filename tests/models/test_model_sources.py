"""Model options of `evaluate`: exactly one source; your own MODULE:FUNCTION with --checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import invoke

from wmrbench.evaluation import evaluate_source
from wmrbench.models.checkpoint import extract_state_dict, read_checkpoint

FAST = ("--n-examples", "24", "--steps", "2", "--alpha-test", "1,2", "--quiet")

FACTORY = '''
from wmrbench.models import create_model


def build():
    return create_model("digitsnet", num_classes=10, in_channels=1)


def not_a_model():
    return 42
'''


@pytest.fixture()
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "mynets.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture()
def plain_state_dict(digits_runs: dict[str, Path], tmp_path: Path) -> Path:
    """The TRADES+ours digits weights as a plain state_dict (no wmrbench config inside)."""
    state = extract_state_dict(read_checkpoint(digits_runs["trades-a2"]))
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    return path


def _metrics(results: Path, run: str) -> dict:
    return json.loads((results / run / "summary.json").read_text())["metrics"]


def test_factory_with_checkpoint_matches_arch_with_checkpoint(factory_file, plain_state_dict, tmp_path) -> None:
    """The same weights through --model FILE:build and through --arch give the same numbers."""
    by_factory = invoke("evaluate", "--model", f"{factory_file}:build", "--checkpoint", plain_state_dict,
                        "--dataset", "digits", "--results-dir", tmp_path / "a", *FAST)
    assert by_factory.exit_code == 0, by_factory.output
    by_arch = invoke("evaluate", "--checkpoint", plain_state_dict, "--arch", "digitsnet", "--dataset", "digits",
                     "--results-dir", tmp_path / "b", *FAST)
    assert by_arch.exit_code == 0, by_arch.output
    assert _metrics(tmp_path / "a", "weights") == _metrics(tmp_path / "b", "weights")
    summary = json.loads((tmp_path / "a" / "weights" / "summary.json").read_text())
    assert summary["model"]["source"] == "factory" and summary["model"]["factory"] == f"{factory_file}:build"
    assert _metrics(tmp_path / "a", "weights")["A_nat"] > 50  # the trained weights were loaded


def test_factory_by_module_name_from_the_working_directory(factory_file, plain_state_dict, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(factory_file.parent)
    monkeypatch.syspath_prepend(str(factory_file.parent))
    out = invoke("evaluate", "--model", "mynets:build", "--checkpoint", plain_state_dict, "--dataset", "digits",
                 "--results-dir", tmp_path / "r", "--run", "mine", *FAST)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "r" / "mine" / "summary.json").is_file()


def test_the_library_evaluates_a_checkpoint_source_with_typed_options(digits_runs, tmp_path) -> None:
    from wmrbench.models.source import ModelSource, SourceKind

    source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(digits_runs["trades-a0"]))
    options = {"n_examples": 10, "steps": 1, "results_dir": str(tmp_path)}
    result = evaluate_source(source, options, show_progress=False)
    assert result.summary.run == "trades-a0"
    assert result.summary.model.defense == "trades"
    assert result.summary.config.attack.steps == 1 and result.summary.config.n_examples == 10
    assert (tmp_path / "trades-a0" / "records.csv").is_file()


@pytest.mark.parametrize(("args", "message"), [
    ((), "say which model: --checkpoint PATH [--arch NAME], --model-id NAME, or --model MODULE:FUNCTION"),
    (("--model-id", "Standard", "--checkpoint", "x.pt"), "--model-id loads RobustBench's weights: drop --checkpoint, --arch and --model"),
    (("--model-id", "Standard", "--model", "m:f"), "--model-id loads RobustBench's weights"),
    (("--arch", "digitsnet"), "--arch describes the weights in --checkpoint: give --checkpoint too"),
    (("--model", "m:f", "--arch", "digitsnet", "--checkpoint", "x.pt"), "--arch names a registered architecture and --model builds your own"),
    (("--checkpoint", "x.pt", "--threat-model", "L2"), "--threat-model and --model-dir apply only with --model-id"),
    (("--model", "no_colon"), "--model takes MODULE:FUNCTION"),
    (("--model", "surely_not_a_module_4711:build", "--dataset", "digits"), "no module named 'surely_not_a_module_4711'"),
    (("--model-id", "A", "--model-id", "B", "--run", "x"), "--run names one result"),
])
def test_model_options_must_name_one_source(args, message, tmp_path) -> None:
    out = invoke("evaluate", *args, "--results-dir", tmp_path)
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not any(tmp_path.iterdir())


def test_factory_errors_are_one_line(factory_file, tmp_path) -> None:
    out = invoke("evaluate", "--model", f"{factory_file}:not_a_model", "--dataset", "digits", "--results-dir", tmp_path)
    assert out.exit_code == 2
    assert "returned int, not a torch.nn.Module" in out.stderr
    out = invoke("evaluate", "--model", f"{factory_file}:missing", "--dataset", "digits", "--results-dir", tmp_path)
    assert out.exit_code == 2 and "has no attribute 'missing'" in out.stderr
    out = invoke("evaluate", "--model", f"{factory_file}:build", "--results-dir", tmp_path)
    assert out.exit_code == 2 and "say which data set with --dataset" in out.stderr
