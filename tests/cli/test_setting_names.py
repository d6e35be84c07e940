"""The CLI prints the library's messages with its own option names."""

from __future__ import annotations

from tests.conftest import assert_one_line_error, invoke


def test_the_cli_names_the_setting_as_its_option(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = invoke("train", "--dataset", "digits", "--step-size", "-1", "--epochs", "1", "--device", "cpu", "--quiet")
    line = assert_one_line_error(out, "--step-size must be a finite number >= 0; got -1.0")
    assert "step_size" not in line
    assert not (tmp_path / "checkpoints").exists()  # refused before any work


def test_a_model_source_clash_is_named_with_the_cli_options(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = invoke("evaluate", "--checkpoint", "a.pt", "--model-id", "Carmon2019Unlabeled", "--quiet")
    assert_one_line_error(out, "--model-id loads RobustBench's weights: drop --checkpoint, --arch and --model")
