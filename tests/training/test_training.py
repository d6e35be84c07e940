"""Training: checkpoints are safe to load, resume is exact, the paper's presets are used."""

from __future__ import annotations

import filecmp
import json

import pytest
import torch

from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.presets import train_config
from wmrbench.core.errors import WmrbenchError
from wmrbench.training import fit


def tiny(tmp_path, defense=Defense.TRADES, **kw):
    values = dict(alpha_train=2.0, epochs=3, steps=2, batch_size=128, milestones=(2,),
                  checkpoint_dir=str(tmp_path), device="cpu")
    values.update(kw)
    return train_config(DatasetName.DIGITS, defense, **values)


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow  # 7 s measured on a loaded 2-core CPU (tests/README.md)
@pytest.mark.parametrize("defense", list(Defense))
def test_resumed_run_equals_uninterrupted_run(tmp_path, defense, monkeypatch):
    # Each run in a folder of its own with the same relative checkpoint_dir: the configs saved
    # are the same, so the two last.pt files can be compared byte for byte.
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    full = fit(tiny("ck", defense), show_progress=False)
    monkeypatch.chdir(tmp_path / "b")
    part = fit(tiny("ck", defense), stop_after_epochs=1, show_progress=False)
    assert torch.load(part.checkpoint, weights_only=True)["epoch"] == 1
    resumed = fit(tiny("ck", defense), resume=True, stop_after_epochs=1, show_progress=False)
    resumed = fit(tiny("ck", defense), resume=True, show_progress=False)
    assert filecmp.cmp(tmp_path / "a" / full.checkpoint, resumed.checkpoint, shallow=False)
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    lines = (resumed.checkpoint.parent / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    # Each piece's epoch times came through the resumes (timing.jsonl), in metrics.jsonl and the history.
    assert all(json.loads(line)["seconds"] > 0 for line in lines)
    assert all(h["seconds"] > 0 for h in resumed.history)
    # The learning-rate schedule was restored too: x0.1 after the milestone at epoch 2.
    assert [h["lr"] for h in resumed.history] == pytest.approx([0.05, 0.05, 0.005])


def test_checkpoint_is_plain_data(tmp_path):
    result = fit(tiny(tmp_path, epochs=1), show_progress=False)
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "config", "history"} <= ckpt.keys()
    assert ckpt["config"]["alpha_train"] == 2.0 and ckpt["config"]["defense"] == "trades"
    assert not list(result.checkpoint.parent.glob(".*.tmp"))  # no temporary file left behind


def test_weighted_training_changes_the_model(tmp_path):
    base = fit(tiny(tmp_path / "a", alpha_train=0.0, epochs=1), show_progress=False)
    ours = fit(tiny(tmp_path / "b", alpha_train=2.0, epochs=1), show_progress=False)
    a, b = weights(base.checkpoint), weights(ours.checkpoint)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path):
    fit(tiny(tmp_path, epochs=1), show_progress=False)
    with pytest.raises(WmrbenchError, match="use resume=True or another run$") as raised:  # a Python caller's names
        fit(tiny(tmp_path, epochs=1), show_progress=False)
    assert "--" not in str(raised.value)
    with pytest.raises(WmrbenchError, match="^resume=True: no checkpoint"):
        fit(tiny(tmp_path, epochs=1, run="other"), resume=True, show_progress=False)


def test_resume_refuses_changed_settings(tmp_path):
    fit(tiny(tmp_path, epochs=1), show_progress=False)
    with pytest.raises(WmrbenchError, match="beta"):
        fit(tiny(tmp_path, epochs=2, beta=1.0), resume=True, show_progress=False)


def test_presets_follow_the_paper():
    mnist = train_config(DatasetName.MNIST, Defense.TRADES)
    assert (mnist.attack.eps, mnist.attack.steps, mnist.attack.step_size, mnist.beta) == (0.3, 40, 0.01, 6.0)
    assert (mnist.lr, mnist.weight_decay, mnist.milestones, mnist.gamma) == (0.01, 0.0, (54, 74, 89), 0.1)
    pgd = train_config(DatasetName.MNIST, Defense.PGD, steps=5)
    assert (pgd.weight_decay, pgd.milestones, pgd.gamma, pgd.attack.steps) == (5e-4, (60,), 0.2, 5)


def test_mnist_trades_lowers_the_rate_when_the_one_based_epoch_reaches_55_75_and_90():
    """As TRADES' code does (``if epoch >= 55``, epochs counted from 1): the 55th epoch already
    runs at 0.001, so MultiStepLR (which counts finished epochs) needs milestones 54, 74, 89."""
    import torch

    cfg = train_config(DatasetName.MNIST, Defense.TRADES)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), gamma=cfg.gamma)
    lr_of_epoch = {}
    for epoch in range(1, cfg.epochs + 1):  # 1-based, as the authors count
        lr_of_epoch[epoch] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
    assert lr_of_epoch[54] == pytest.approx(0.01) and lr_of_epoch[55] == pytest.approx(0.001)
    assert lr_of_epoch[74] == pytest.approx(0.001) and lr_of_epoch[75] == pytest.approx(1e-4)
    assert lr_of_epoch[89] == pytest.approx(1e-4) and lr_of_epoch[90] == pytest.approx(1e-5)


def test_cifar10_pgd_at_pads_its_random_crop_by_reflection_and_trades_by_zeros():
    assert train_config(DatasetName.CIFAR10, Defense.PGD).padding_mode.value == "reflect"
    assert train_config(DatasetName.CIFAR10, Defense.TRADES).padding_mode.value == "zeros"


def test_attack_mode_train_attacks_with_batch_statistics_and_is_recorded(tmp_path):
    """--attack-mode train (the authors' PGD-AT code): the training attack sees train mode."""
    import torch

    from wmrbench import attacks
    from wmrbench.core.attack_config import AttackConfig
    from wmrbench.models import create_model

    torch.manual_seed(0)
    model = create_model("tinycnn", 10, 1).eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    attack = AttackConfig(0.1, 0.02, 3, start="zero")
    before = model.feature_extractor.bn1.running_mean.clone()
    evaluated = attacks.pgd(model, x, y, attack)
    assert torch.equal(model.feature_extractor.bn1.running_mean, before)  # eval mode: frozen statistics
    trained = attacks.pgd(model, x, y, attack, train_mode=True)
    assert not model.training  # the caller's mode is restored
    assert not torch.equal(model.feature_extractor.bn1.running_mean, before)  # batch statistics were used
    assert not torch.equal(evaluated.x_adv, trained.x_adv)
    cfg = tiny(tmp_path, Defense.PGD, attack_mode="train", epochs=1)
    assert cfg.attack_mode.value == "train"
    result = fit(cfg, show_progress=False)
    assert torch.load(result.checkpoint, weights_only=True)["config"]["attack_mode"] == "train"


@pytest.mark.slow  # 9 s measured on a loaded 2-core CPU (tests/README.md)
def test_held_out_evaluation_keeps_best_pt_and_resume_keeps_the_best(tmp_path):
    """--eval-every / --val-size / --select-by on digits: the held-out split comes from the
    training set, best.pt is the best evaluated epoch, and a resumed run agrees."""
    from wmrbench.training.selection import carve_validation
    from wmrbench.data import load_split

    common = dict(epochs=3, steps=1, milestones=(), eval_every=1, val_size=100, select_by="A_tr@2", log_every=1)
    straight = fit(tiny(tmp_path / "a", **common), show_progress=False)
    history = straight.history
    assert all("selected" in h and h["selected"]["by"] == "A_tr@2" for h in history)
    values = [h["selected"]["value"] for h in history]
    best_epoch = values.index(max(values)) + 1
    best = torch.load(straight.checkpoint.parent / "best.pt", weights_only=True)
    assert best["epoch"] == best_epoch
    # the held-out split is part of the training split, chosen by the seed, disjoint from the rest
    train = load_split(DatasetName.DIGITS, "", train=True)
    rest, held = carve_validation(train, 100, 0)
    assert len(rest) + len(held) == len(train) and len(held) == 100
    # resumed in pieces: the same history and the same best.pt
    fit(tiny(tmp_path / "b", **common), stop_after_epochs=1, show_progress=False)
    resumed = fit(tiny(tmp_path / "b", **common), resume=True, show_progress=False)
    assert [h["selected"]["value"] for h in resumed.history] == values
    again = torch.load(resumed.checkpoint.parent / "best.pt", weights_only=True)
    assert again["epoch"] == best_epoch
    assert all(torch.equal(again["model"][k], best["model"][k]) for k in best["model"])


def test_eval_every_needs_a_held_out_split_and_a_valid_selection(tmp_path):
    with pytest.raises(WmrbenchError, match="give val_size too"):
        tiny(tmp_path, eval_every=1)
    with pytest.raises(WmrbenchError, match="select_by='A_tr': choose A_rob, A_sa@ALPHA or A_tr@ALPHA"):
        tiny(tmp_path, select_by="A_tr")
