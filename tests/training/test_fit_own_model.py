"""``wmrbench.training.api.fit``: a user's own nn.Module on the user's own data, through the loop
``wmrbench train`` runs: last.pt / best.pt, exact resume, the divergence stop,
one line for bad input, and the example script that shows it."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.conftest import HANG_S, REPO
from wmrbench.core.config import CUSTOM_DATASET, train_config_from_dict
from wmrbench.core.defaults import DEFAULTS
from wmrbench.core.errors import WmrbenchError
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.training.api import fit

N = 240  # real digits: enough for a held-out part and a few batches, a few seconds per run


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images[:N], dtype=torch.float32).div(16.0).unsqueeze(1)
    return x, torch.tensor(bunch.target[:N])


class OwnNet(nn.Module):
    """Not in wmrbench's registry: a user's model, with dropout so that the global RNG matters."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def fresh() -> OwnNet:
    torch.manual_seed(123)  # the user's own initial weights
    return OwnNet()


SMALL = dict(eps=0.1, step_size=0.05, steps=2, batch_size=40, lr=0.05, device="cpu", show_progress=False)


def test_own_model_trains_writes_last_and_best_and_returns_its_weights(tmp_path, digits):
    model = fresh()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, digits, epochs=2, val_size=40, checkpoint_dir=tmp_path, run="own", **SMALL)
    assert result.last == tmp_path / "own" / "last.pt" and result.best == tmp_path / "own" / "best.pt"
    assert result.model is model  # trained in place
    saved = read_checkpoint(result.last)  # weights_only=True
    cfg = train_config_from_dict(saved["config"])
    assert cfg.dataset == CUSTOM_DATASET and cfg.arch == "OwnNet" and saved["epoch"] == 2
    for key, value in model.state_dict().items():
        assert torch.equal(saved["model"][key], value)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all("selected" in h and 0 <= h["val"]["A_rob"] <= h["val"]["A_nat"] <= 100 for h in result.history)
    best = read_checkpoint(result.best)
    values = [h["selected"]["value"] for h in result.history]
    assert best["epoch"] == values.index(max(values)) + 1  # the best held-out epoch, ties to the earlier
    assert (tmp_path / "own" / "metrics.jsonl").read_text().count("\n") == 2


def test_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, digits, monkeypatch):
    # The same relative checkpoint_dir from two folders: the saved configs agree, so do the bytes.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    whole = fit(fresh(), digits, epochs=2, checkpoint_dir="ck", **SMALL)
    monkeypatch.chdir(tmp_path / "b")
    first = fit(fresh(), digits, epochs=2, stop_after_epochs=1, checkpoint_dir="ck", **SMALL)
    assert [h["epoch"] for h in first.history] == [1]
    resumed = fit(fresh(), digits, epochs=2, resume=True, checkpoint_dir="ck", **SMALL)
    assert filecmp.cmp(tmp_path / "a" / whole.last, resumed.last, shallow=False)


def test_resume_refuses_other_settings_and_a_second_fresh_start_of_a_named_run(tmp_path, digits):
    fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, run="own", **SMALL)
    with pytest.raises(WmrbenchError, match="already has a checkpoint"):
        fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, run="own", **SMALL)
    with pytest.raises(WmrbenchError, match=r"trained with other settings \(lr\)"):
        fit(fresh(), digits, epochs=2, resume=True, checkpoint_dir=tmp_path, run="own", **{**SMALL, "lr": 0.01})


def test_without_a_run_name_each_call_trains_a_fresh_run_and_resume_takes_the_newest(tmp_path, digits):
    """A script run twice trains twice (checkpoints/custom, then custom-2), never stopping at the
    first run's checkpoint; resume=True continues the newest."""
    with pytest.raises(WmrbenchError, match="no run to resume"):
        fit(fresh(), digits, epochs=1, resume=True, checkpoint_dir=tmp_path, **SMALL)
    first = fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    second = fit(fresh(), digits, epochs=2, stop_after_epochs=1, checkpoint_dir=tmp_path, **SMALL)
    assert (first.last, second.last) == (tmp_path / "custom" / "last.pt", tmp_path / "custom-2" / "last.pt")
    resumed = fit(fresh(), digits, epochs=2, resume=True, checkpoint_dir=tmp_path, **SMALL)
    assert resumed.last == second.last and read_checkpoint(second.last)["epoch"] == 2
    assert read_checkpoint(first.last)["epoch"] == 1  # untouched


def test_epoch_lines_name_their_run_and_show_progress_false_prints_none(tmp_path, digits, capsys):
    fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, run="loud", **{**SMALL, "show_progress": True})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 1 and lines[0].endswith("  run loud"), lines
    fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, run="silent", **{**SMALL, "show_progress": False})
    assert "epoch" not in capsys.readouterr().err


def test_a_fit_result_prints_as_one_line_without_the_model(tmp_path, digits):
    result = fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    text = repr(result)
    assert "\n" not in text and "Linear" not in text and type(result.model).__name__ in text
    assert str(result.last) in text and "1 epoch" in text


def test_a_dataset_of_pairs_trains_exactly_as_the_tensors(tmp_path, digits):
    x, y = digits
    pairs = torch.utils.data.TensorDataset(x, y)
    a = fit(fresh(), (x, y), epochs=1, checkpoint_dir=tmp_path / "a", **SMALL)
    b = fit(fresh(), pairs, epochs=1, checkpoint_dir=tmp_path / "b", **SMALL)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


class Counted(torch.utils.data.Dataset):
    """A map-style Dataset of (image, int label) pairs that counts each item it hands out."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.reads = [0] * len(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.reads[i] += 1
        return self.x[i], int(self.y[i])


def test_a_dataloader_trains_exactly_as_the_tensors(tmp_path, digits):
    """What wmrbench.evaluate takes, fit takes: a DataLoader of (images, labels) batches."""
    x, y = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=50, shuffle=False)
    a = fit(fresh(), (x, y), epochs=1, checkpoint_dir=tmp_path / "a", **SMALL)
    b = fit(fresh(), loader, epochs=1, checkpoint_dir=tmp_path / "b", **SMALL)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_a_dataset_is_read_once_in_batches_for_the_whole_run(tmp_path, digits):
    """Each item once (not once per epoch, not again for the held-out part), and the result is
    the tensors' bit for bit. A shuffling DataLoader is said to make the run depend on its order."""
    x, y = digits
    counted = Counted(x, y)
    a = fit(fresh(), counted, epochs=2, val_size=40, checkpoint_dir=tmp_path / "a", **SMALL)
    assert counted.reads == [1] * len(y)
    b = fit(fresh(), (x, y), epochs=2, val_size=40, checkpoint_dir=tmp_path / "b", **SMALL)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    shuffled = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=50, shuffle=True)
    with pytest.warns(UserWarning, match="shuffles"):
        fit(fresh(), shuffled, epochs=1, stop_after_epochs=0, checkpoint_dir=tmp_path / "c", **SMALL)


def test_fit_trains_the_model_in_place_on_its_device_and_leaves_it_in_train_mode(tmp_path, digits):
    """What docs/api.md says fit does to a model: trained in place (``result.model`` is it), moved
    to ``device`` and left there, left in train mode whatever its mode was, and every
    parameter's requires_grad as it was (a frozen layer stays frozen and is not trained)."""
    for training in (True, False):
        model = fresh().train(training)
        frozen = next(iter(model.parameters()))
        frozen.requires_grad_(False)
        before = frozen.detach().clone()
        result = fit(model, digits, epochs=1, val_size=40, checkpoint_dir=tmp_path / str(training), **SMALL)
        assert result.model is model and model.training
        assert [p.requires_grad for p in model.parameters()] == [p is not frozen for p in model.parameters()]
        assert torch.equal(frozen, before)
        assert all(p.device.type == "cpu" for p in model.parameters())


def test_fit_moves_the_model_only_to_the_resolved_device(tmp_path, digits, monkeypatch):
    """Device-agnostic: "cpu" resolves to ``torch.device("cpu", 0)`` (unequal to
    ``torch.device("cpu")``), so a move by any other path than the resolved device is seen."""
    from wmrbench.core import distributed

    marked, real = torch.device("cpu", 0), distributed.resolve_device
    monkeypatch.setattr(distributed, "resolve_device", lambda device: marked if real(device).type == "cpu" else real(device))
    moves: list[torch.device | None] = []
    to, cpu = nn.Module.to, nn.Module.cpu
    monkeypatch.setattr(nn.Module, "to", lambda self, *a, **k: (moves.append(torch._C._nn._parse_to(*a, **k)[0]),
                                                                  to(self, *a, **k))[1])
    monkeypatch.setattr(nn.Module, "cpu", lambda self: (moves.append(torch.device("cpu")), cpu(self))[1])
    fit(fresh(), digits, epochs=1, val_size=40, checkpoint_dir=tmp_path, **SMALL)
    assert moves and {m for m in moves if m is not None} == {marked}, moves


def test_divergence_stops_with_one_line_and_writes_nothing(tmp_path, digits):
    with pytest.raises(WmrbenchError) as caught:
        fit(fresh(), digits, epochs=2, checkpoint_dir=tmp_path, **{**SMALL, "lr": 1e4})
    message = str(caught.value)
    assert message.startswith("training diverged:") and "\n" not in message and "no checkpoint was written" in message
    assert not (tmp_path / "custom" / "last.pt").exists()


@pytest.mark.parametrize("data, match", [
    (lambda x, y: (x * 16, y), r"images must lie in \[0, 1\]"),
    (lambda x, y: (x, y + 5), r"labels must be 0\.\.9 \(the model has 10 outputs\)"),
    (lambda x, y: (x, y[:-1]), "labels in one dimension"),
    (lambda x, y: (x[:, :, :4], y), "the model cannot take inputs of shape"),
    (lambda x, y: [1, 2, 3], r"train_data yields int, not \(images, labels\) pairs"),
    (lambda x, y: 7, "train_data must be a tensor of images, a DataLoader or a Dataset"),
])
def test_bad_data_is_one_line_before_any_work(tmp_path, digits, data, match):
    with pytest.raises(WmrbenchError, match=match):
        fit(fresh(), data(*digits), epochs=1, checkpoint_dir=tmp_path, **SMALL)
    assert not (tmp_path / "custom").exists()


def test_the_named_loop_refuses_a_custom_checkpoint_with_one_line(tmp_path, digits):
    from wmrbench.training import fit as fit_named

    result = fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    cfg = train_config_from_dict(read_checkpoint(result.last)["config"])
    with pytest.raises(WmrbenchError, match="trained on the user's own data"):
        fit_named(cfg, resume=True, show_progress=False)


@pytest.mark.slow  # two fresh interpreters import torch and sklearn: 80 s on a loaded 2-core CPU
def test_the_example_script_runs_twice_in_one_folder_and_writes_its_checkpoints(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for run in ("custom", "custom-2"):  # a tutorial run again must work: the second call trains a fresh run
        done = subprocess.run([sys.executable, str(REPO / "examples" / "fit_own_model.py")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=HANG_S)
        assert done.returncode == 0, done.stderr
        assert f"last: checkpoints/{run}/last.pt" in done.stdout and f"best: checkpoints/{run}/best.pt" in done.stdout
        assert "FitResult(" in done.stdout and "Sequential" not in done.stdout  # one line, not the model's layers
        assert "epoch 1/2" not in done.stderr  # show_progress=False prints no epoch lines
        saved = read_checkpoint(tmp_path / "checkpoints" / run / "last.pt")
        assert saved["epoch"] == 2 and train_config_from_dict(saved["config"]).arch == "TinyNet"
        assert (tmp_path / "checkpoints" / run / "best.pt").is_file()


OWN_SCRIPT = """
import sys, torch
from torch import nn
from sklearn.datasets import load_digits
from wmrbench.training.api import fit
bunch = load_digits()
x = torch.tensor(bunch.images[:240], dtype=torch.float32).div(16.0).unsqueeze(1)
y = torch.tensor(bunch.target[:240])
torch.manual_seed(123)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
fit(model, (x, y), eps=0.1, step_size=0.05, steps=2, epochs=2, batch_size=40, lr=0.05, device="cpu",
    val_size=40, run="ddp", show_progress=False)
"""


@pytest.mark.slow  # torchrun starts two fresh interpreters
def test_own_model_trains_with_ddp_under_torchrun(tmp_path):
    script = tmp_path / "own.py"
    script.write_text(OWN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    saved = read_checkpoint(tmp_path / "checkpoints" / "ddp" / "last.pt")
    assert saved["epoch"] == 2 and [h["processes"] for h in saved["history"]] == [2, 2]
    assert all("selected" in h for h in saved["history"]) and (tmp_path / "checkpoints" / "ddp" / "best.pt").is_file()
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_a_defense_with_its_own_weighting_trains_without_alpha_train(tmp_path, digits):
    result = fit(fresh(), digits, defense="mart", epochs=1, checkpoint_dir=tmp_path, **SMALL)
    cfg = train_config_from_dict(read_checkpoint(result.last)["config"])
    assert cfg.defense.value == "mart" and cfg.alpha_train == 0.0
    trades = fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, run="t", **SMALL)
    # The library's default alpha_train: the plain defense ("+ours" is asked for)
    assert train_config_from_dict(read_checkpoint(trades.last)["config"]).alpha_train == DEFAULTS.alpha_train == 0.0


def test_the_same_model_and_data_train_bit_for_bit_as_the_named_run(tmp_path):
    """One loop: ``fit(model, data)`` with the registry's digitsnet and the digits training split
    gives exactly the weights ``wmrbench train --dataset digits`` gives with the same settings."""
    from wmrbench.data import load_split
    from wmrbench.models import create_model
    from wmrbench.core.presets import train_config
    from wmrbench.training import fit as fit_named

    cfg = train_config("digits", "trades", run="named", epochs=1, steps=2, device="cpu", checkpoint_dir=str(tmp_path))
    named = fit_named(cfg, show_progress=False)
    split = load_split("digits", "data", train=True)
    torch.manual_seed(cfg.seed)  # the named run's initial weights come from its seed
    model = create_model("digitsnet", 10, 1)
    own = fit(model, (split.x, split.y), defense="trades", alpha_train=cfg.alpha_train, eps=cfg.attack.eps,
              step_size=cfg.attack.step_size, steps=2, beta=cfg.beta, epochs=1, batch_size=cfg.batch_size, lr=cfg.lr,
              momentum=cfg.momentum, weight_decay=cfg.weight_decay, milestones=cfg.milestones, gamma=cfg.gamma,
              augment=cfg.augment, seed=cfg.seed, run="own", checkpoint_dir=tmp_path, device="cpu", show_progress=False)
    a, b = read_checkpoint(named.checkpoint), read_checkpoint(own.last)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["history"][0]["loss"] == b["history"][0]["loss"]


def test_a_held_out_split_of_ones_own_chooses_best_pt(tmp_path, digits):
    x, y = digits
    result = fit(fresh(), (x[:200], y[:200]), val_data=(x[200:], y[200:]), epochs=2, checkpoint_dir=tmp_path, **SMALL)
    saved = read_checkpoint(result.last)
    assert train_config_from_dict(saved["config"]).val_size == 40 and result.best is not None
    assert all(h["val"]["A_rob"] <= h["val"]["A_nat"] for h in saved["history"])
    with pytest.raises(WmrbenchError, match="val_size .* or val_data, not both"):
        fit(fresh(), (x, y), val_data=(x, y), val_size=10, checkpoint_dir=tmp_path / "b", **SMALL)
    with pytest.raises(WmrbenchError, match=r"val_data: images must lie in \[0, 1\]"):
        fit(fresh(), (x, y), val_data=(x * 16, y), checkpoint_dir=tmp_path / "b", **SMALL)


def test_wmrbench_evaluate_asks_for_the_data_set_and_architecture_of_a_fit_checkpoint(tmp_path):
    """A checkpoint of ``fit`` records dataset 'custom' and the user's class name: the CLI cannot
    load either by name, so it asks for them in one line each, and evaluates once they are given."""
    from tests.conftest import assert_one_line_error, invoke
    from wmrbench.data import load_split
    from wmrbench.models import create_model

    torch.manual_seed(0)
    model = create_model("digitsnet", 10, 1)
    split = load_split("digits", "data", train=True)
    result = fit(model, (split.x[:120], split.y[:120]), epochs=1, checkpoint_dir=tmp_path / "ck", run="own", **SMALL)
    common = ("evaluate", "--checkpoint", result.last, "--n-examples", "20", "--steps", "2", "--results-dir",
              tmp_path / "res", "--quiet")
    out = invoke(*common)
    assert "trained by wmrbench.fit" in assert_one_line_error(out, "--dataset", "--arch")
    out = invoke(*common, "--dataset", "digits")
    assert "wmrbench.fit on a model of the user's own" in assert_one_line_error(out, "--arch")
    assert not (tmp_path / "res").exists()
    out = invoke(*common, "--dataset", "digits", "--arch", "digitsnet")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "res" / "own" / "summary.json").is_file()


def test_fit_leaves_the_callers_random_stream_as_it_was(tmp_path, digits):
    """fit seeds torch's global generator for the run; the caller's stream continues unchanged."""
    model = fresh()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    fit(model, digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_resuming_into_another_architecture_is_one_line(tmp_path, digits):
    fit(fresh(), digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    class OwnNet(torch.nn.Module):  # the same name, other layers: what a user edits between two calls
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(0)
    other = OwnNet()
    with pytest.raises(WmrbenchError, match="does not fit the architecture") as caught:
        fit(other, digits, epochs=2, checkpoint_dir=tmp_path, resume=True, **SMALL)
    assert "\n" not in str(caught.value) and "resume continues into the architecture" in str(caught.value)


class NanNet(OwnNet):
    def forward(self, x):
        return super().forward(x) * float("nan")


def test_a_model_that_outputs_nan_is_blamed_on_the_model_not_the_learning_rate(tmp_path, digits):
    with pytest.raises(WmrbenchError) as caught:
        fit(NanNet(), digits, epochs=1, checkpoint_dir=tmp_path, **SMALL)
    message = str(caught.value)
    assert "non-finite outputs" in message and "before any attack or training step" in message
    assert "learning rate" not in message and not (tmp_path / "custom").exists()
