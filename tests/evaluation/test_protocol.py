"""Evaluation protocols: the paper's (--protocol paper), the default precision, the threat
model of zoo ids, and the protocol every result and table row carries."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MNIST_CHECKPOINT, MNIST_DIR, invoke, require_mnist
from wmrbench.core.attack_config import Norm, Precision, RestartFrom, RestartRule, Start
from wmrbench.core.config import Protocol
from wmrbench.core.errors import WmrbenchError
from wmrbench.evaluation.pipeline import threat_norm
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.core.presets import PAPER_PROTOCOLS, eval_config


@pytest.mark.parametrize(("dataset", "eps", "steps", "step_size"), [
    ("mnist", 0.3, 40, 0.01), ("cifar10", 0.031, 20, 0.0031), ("tinyimagenet", 0.016, 10, 0.004),
])
def test_the_paper_protocol_per_data_set(dataset, eps, steps, step_size) -> None:
    cfg = eval_config(dataset, "r", protocol="paper")
    assert cfg.protocol is Protocol.PAPER
    a = cfg.attack
    assert (a.eps, a.steps, a.step_size, a.restarts) == (eps, steps, step_size, 10)
    assert (a.start, a.restart_from, a.norm) == (Start.UNIFORM, RestartFrom.START, Norm.LINF)
    assert a.restart_rule is RestartRule.MAX_CE
    assert cfg.n_examples is None  # the full test set
    assert PAPER_PROTOCOLS[cfg.dataset].n_examples == 10_000


def test_options_apply_on_top_of_a_protocol() -> None:
    cfg = eval_config("mnist", "r", protocol="paper", restarts=2, restart_from="previous")
    assert (cfg.attack.restarts, cfg.attack.restart_from, cfg.attack.steps) == (2, RestartFrom.PREVIOUS, 40)


def test_evaluation_defaults_to_fp32_on_every_device() -> None:
    """bf16 steps weaken the attack, so reported numbers are fp32's unless asked otherwise."""
    for device in ("cpu", "cuda", "auto"):
        assert eval_config("cifar10", "r", device=device).precision is Precision.FP32
    assert eval_config("cifar10", "r", precision="bf16").precision is Precision.BF16


def test_zoo_models_are_attacked_in_their_own_threat_model() -> None:
    zoo = ModelSource(SourceKind.ROBUSTBENCH, model_id="Any", threat_model="L2")
    assert threat_norm(zoo) is Norm.L2
    assert threat_norm(ModelSource(SourceKind.ROBUSTBENCH, model_id="Any", threat_model="Linf")) is Norm.LINF
    assert threat_norm(ModelSource(SourceKind.CHECKPOINT, checkpoint="x.pt")) is Norm.LINF
    l2 = eval_config("cifar10", "r", norm=threat_norm(zoo)).attack
    assert (l2.norm, l2.eps, l2.step_size, l2.steps) == (Norm.L2, 0.5, 0.125, 20)  # RobustBench's L2 radius
    with pytest.raises(WmrbenchError, match="corruptions model: it is benchmarked on common corruptions"):
        threat_norm(ModelSource(SourceKind.ROBUSTBENCH, model_id="Any", threat_model="corruptions"))


def test_corruption_ids_are_refused_through_the_cli(tmp_path) -> None:
    out = invoke("evaluate", "--model-id", "Hendrycks2020AugMix_WRN", "--threat-model", "corruptions",
                 "--model-dir", tmp_path, "--results-dir", tmp_path / "r")
    assert out.exit_code == 2
    assert "corruptions model" in out.stderr and "Traceback" not in out.output
    assert not (tmp_path / "r").exists()


def test_paper_protocol_through_the_cli_records_and_prints_its_protocol(tmp_path) -> None:
    require_mnist()
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--data-dir", MNIST_DIR, "--n-examples", "8", "--protocol", "paper", "--steps", "2",
                 "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path, "--run", "paper", "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "paper" / "summary.json").read_text())
    assert summary["config"]["protocol"] == "paper" and summary["config"]["precision"] == "fp32"
    assert summary["config"]["attack"]["restarts"] == 10 and summary["config"]["attack"]["steps"] == 2
    assert "PGD-2, Linf eps 0.3, step 0.01, 10 restarts (max-ce rule), fp32" in out.stdout
    assert summary["config"]["attack"]["restart_rule"] == "max-ce"  # the authors' choice among restarts


def test_bf16_prints_a_note_before_the_work(tmp_path, digits_runs) -> None:
    out = invoke("evaluate", "--checkpoint", digits_runs["trades-a0"], "--precision", "bf16", "--n-examples", "4",
                 "--steps", "1", "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path, "--quiet")
    assert out.exit_code == 0, out.output
    assert "Note: --precision bf16 runs the attack in bf16 autocast, a weaker attack" in out.stderr
    assert json.loads((tmp_path / "trades-a0" / "summary.json").read_text())["config"]["precision"] == "bf16"


@pytest.mark.parametrize("method", ["apgd-ce", "apgd-dlr"])
def test_attack_option_runs_apgd_for_a_rob_and_weighted_apgd_for_a_tr(tmp_path, method) -> None:
    require_mnist()
    out = invoke("evaluate", "--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist",
                 "--data-dir", MNIST_DIR, "--n-examples", "16", "--attack", method, "--steps", "5",
                 "--alpha-test", "0,2", "--device", "cpu", "--results-dir", tmp_path, "--run", method, "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / method / "summary.json").read_text())
    assert summary["config"]["method"] == method
    m = summary["metrics"]
    assert m["A_sa"]["0"] == m["A_rob"] and m["A_wc"]["2"] <= min(m["A_sa"]["2"], m["A_tr"]["2"])
    assert f"{method.upper()}-5, Linf eps 0.3" in out.stdout


@pytest.mark.slow  # AutoAttack's FAB-T and Square are slow on a CPU
def test_autoattack_through_the_cli_is_at_most_pgd(tmp_path) -> None:
    require_mnist()
    common = ("--checkpoint", MNIST_CHECKPOINT, "--arch", "smallcnn", "--dataset", "mnist", "--data-dir", MNIST_DIR,
              "--n-examples", "6", "--eps", "0.3", "--alpha-test", "1", "--device", "cpu", "--results-dir", tmp_path,
              "--quiet")
    out = invoke("evaluate", *common, "--attack", "autoattack", "--steps", "5", "--run", "aa")
    assert out.exit_code == 0, out.output
    pgd = invoke("evaluate", *common, "--run", "pgd")
    assert pgd.exit_code == 0, pgd.output
    aa = json.loads((tmp_path / "aa" / "summary.json").read_text())
    assert aa["config"]["method"] == "autoattack" and aa["config"]["aa_version"] == "standard"
    assert aa["metrics"]["A_rob"] <= json.loads((tmp_path / "pgd" / "summary.json").read_text())["metrics"]["A_rob"]
    assert "AutoAttack (standard)" in out.stdout
