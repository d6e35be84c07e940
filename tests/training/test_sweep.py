"""``train --alpha-train 0,0.5,2``: one run per value, side by side in one process, each bit for bit
the run trained alone (weights, optimizer state and metrics.jsonl), resumable, one line per error."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import assert_one_line_error, files_under, invoke
from wmrbench import training
from wmrbench.models.registry import list_models, register_model

# Dropout draws from torch's global generator and BatchNorm keeps per-model running statistics:
# the two things runs taking turns in one process could leak into each other. No registered
# digits architecture has dropout, so the test registers one (everything else is the real CLI).
ARCH = "sweep-test-net"
if ARCH not in list_models():
    @register_model(ARCH, "test only: conv + BatchNorm + dropout for 8x8 digits", input_shape=(1, 8, 8))
    def _sweep_test_net(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, num_classes),
        )

# Augmentation on (random crop + flip from the augment stream), a 2-step TRADES attack from the
# attack stream, the paper's unnormalized, undetached weights.
COMMON = ("train", "--dataset", "digits", "--defense", "trades", "--arch", ARCH, "--augment", "--steps", "2",
          "--batch-size", "128", "--epochs", "2", "--milestones", "1", "--device", "cpu", "--quiet")
ALPHAS = ("0", "0.5", "2")


def _train(ck: Path, *args: str) -> None:
    out = invoke(*COMMON, "--checkpoint-dir", ck, *args)
    assert out.exit_code == 0, out.output


def _solo(ck: Path, alphas=ALPHAS) -> dict[str, Path]:
    """Each alpha trained alone, named as the sweep names its runs."""
    for alpha in alphas:
        _train(ck, "--alpha-train", alpha, "--run", f"s-a{alpha}")
    return {alpha: ck / f"s-a{alpha}" for alpha in alphas}


def _differences(a: Path, b: Path) -> list[str]:
    """What differs between two run folders: weights, optimizer state, epochs, every logged number
    but the wall time."""
    x, y = (torch.load(p / "last.pt", weights_only=True) for p in (a, b))
    found = [k for k in x["model"] if not torch.equal(x["model"][k], y["model"][k])]
    for key, state in x["optimizer"]["state"].items():
        other = y["optimizer"]["state"][key]
        found += [f"optimizer {key}.{n}" for n, v in state.items() if not torch.equal(v, other[n])]
    if x["epoch"] != y["epoch"]:
        found.append(f"epoch {x['epoch']} != {y['epoch']}")

    def logged(folder: Path) -> list[dict]:
        lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]

    if logged(a) != logged(b):
        found.append("metrics.jsonl")
    return found


@pytest.mark.slow  # 14 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_sweep_trains_each_run_exactly_as_alone_and_resumes(tmp_path):
    solo = _solo(tmp_path / "solo")

    _train(tmp_path / "sweep", "--alpha-train", ",".join(ALPHAS), "--run", "s")
    for alpha, alone in solo.items():
        assert _differences(tmp_path / "sweep" / f"s-a{alpha}", alone) == [], alpha
    # The runs really differ from each other (alpha_train is not ignored).
    assert _differences(solo["0"], solo["2"])

    # Stopped after one epoch, and one run lost even that (killed before it saved): --resume
    # continues two runs from epoch 1, starts the third from scratch, and all three end exact.
    _train(tmp_path / "parts", "--alpha-train", ",".join(ALPHAS), "--run", "s", "--stop-after-epochs", "1")
    assert [json.loads(line)["epoch"] for line in (tmp_path / "parts" / "s-a2" / "metrics.jsonl").read_text().splitlines()] == [1]
    shutil.rmtree(tmp_path / "parts" / "s-a0.5")
    _train(tmp_path / "parts", "--alpha-train", ",".join(ALPHAS), "--run", "s", "--resume")
    for alpha, alone in solo.items():
        assert _differences(tmp_path / "parts" / f"s-a{alpha}", alone) == [], alpha


@pytest.mark.slow  # 5 s measured on a loaded 2-core CPU (tests/README.md)
def test_without_its_own_random_state_a_run_of_a_sweep_would_differ(tmp_path, monkeypatch):
    # The control that shows the test above can fail: with every run drawing dropout masks from
    # one shared global generator (no swap), each run draws after the other from the second step
    # on, and neither equals its solo run.
    solo = _solo(tmp_path / "solo", alphas=("0", "2"))
    monkeypatch.setattr(training.GlobalRng, "active", lambda self: contextlib.nullcontext())
    _train(tmp_path / "sweep", "--alpha-train", "0,2", "--run", "s")
    assert _differences(tmp_path / "sweep" / "s-a0", solo["0"])
    assert _differences(tmp_path / "sweep" / "s-a2", solo["2"])


def test_sweep_names_and_errors(tmp_path):
    ck = tmp_path / "ck"
    # Without --run, each run has its default name.
    out = invoke(*COMMON, "--epochs", "1", "--alpha-train", "0,2", "--checkpoint-dir", ck)
    assert out.exit_code == 0, out.output
    assert {p.name for p in ck.iterdir()} == {"digits-trades-a0", "digits-trades-a2"}
    assert "checkpoint: " + str(ck / "digits-trades-a2" / "last.pt") in out.stdout
    before = files_under(tmp_path)
    # A run of the sweep that exists already: refused before any work, nothing written.
    out = invoke(*COMMON, "--epochs", "1", "--alpha-train", "0,0.5,2", "--checkpoint-dir", ck)
    assert_one_line_error(out, "run 'digits-trades-a0' already has a checkpoint", "--resume")
    out = invoke(*COMMON, "--alpha-train", "0,2", "--run", "none", "--resume", "--checkpoint-dir", ck)
    assert_one_line_error(out, "--resume: no checkpoint at", "nor at any other run of the sweep")
    out = invoke(*COMMON, "--alpha-train", "0,-1", "--checkpoint-dir", ck)
    assert_one_line_error(out, "--alpha-train must be a finite number >= 0")
    assert files_under(tmp_path) == before


def test_a_run_that_diverges_stops_and_the_others_go_on(tmp_path):
    # alpha_train 1e4 overflows exp(-alpha * margin) on the first misclassified example.
    out = invoke(*COMMON, "--epochs", "1", "--log-every", "1", "--alpha-train", "0,1e4", "--run", "d",
                 "--checkpoint-dir", tmp_path)
    line = assert_one_line_error(out, "run 'd-a10000' diverged: the loss became", "the other runs went on",
                                 "no checkpoint was written")
    assert "--alpha-train (now 10000)" in line
    assert (tmp_path / "d-a0" / "last.pt").is_file()
    assert not (tmp_path / "d-a10000").exists()


def test_an_empty_dataset_or_defense_is_refused_not_taken_as_the_default():
    """Only None means "not given" (``x or DEFAULT`` turned "" into MNIST / PGD-AT silently)."""
    from wmrbench.core.errors import WmrbenchError
    from wmrbench.training.plan import config_for_run
    from wmrbench.training.sweep import sweep_configs

    for dataset, defense in (("", None), (None, "")):
        with pytest.raises(WmrbenchError, match="unknown"):
            config_for_run(dataset, defense, {}, False)
        with pytest.raises(WmrbenchError, match="unknown"):
            sweep_configs(dataset, defense, {}, [0.0], False)
