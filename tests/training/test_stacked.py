"""``--stack on``: the runs of a sweep trained as one stacked model equal the same runs
trained alone (bit for bit run by run, within a measured tolerance through vmap), resume per run,
and a run that diverges stops alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import SHARED_DATA, assert_one_line_error, invoke
from tests.training.test_sweep import ARCH  # registers the conv + BatchNorm + dropout test architecture
from wmrbench import training
from wmrbench.core.config import TrainConfig
from wmrbench.core.errors import WmrbenchError
from wmrbench.core.presets import train_config
from wmrbench.training.stacked import StackedNet, _Masks, fit_stacked, stacked_step

# The vmap path against the runs trained alone, float32 on the CPU, measured on these tests' runs
# (docs/reproduction.md): the largest weight difference after one epoch was 7.1e-4 (the TRADES
# runs; 1.2e-7 for the PGD runs); the bound leaves room for other CPUs' kernels.
VMAP_WEIGHT_TOLERANCE = 2e-3


def _cfgs(ck: Path, arch: str = ARCH, epochs: int = 2, **over) -> list[TrainConfig]:
    """Four runs as table1 has them (pgd a0 and a0.5, trades a0 and a2), on digits, with their own
    lr, weight decay and schedule, so that nothing per run can be mixed up unseen."""
    common = dict(arch=arch, steps=2, batch_size=128, epochs=epochs, device="cpu", checkpoint_dir=str(ck),
                  augment=True, **over)
    return [
        train_config("digits", "pgd", alpha_train=0.0, run="pgd-a0", milestones=(1,), **common),
        train_config("digits", "pgd", alpha_train=0.5, run="pgd-a0.5", lr=0.03, weight_decay=1e-3, milestones=(1,),
                     gamma=0.5, **common),
        train_config("digits", "trades", alpha_train=0.0, run="trades-a0", milestones=(1,), **common),
        train_config("digits", "trades", alpha_train=2.0, run="trades-a2", lr=0.02, milestones=(2,), **common),
    ]


def _load(folder: Path) -> dict:
    return torch.load(folder / "last.pt", weights_only=True)


def _history(folder: Path) -> list[dict]:
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def _same(a: Path, b: Path) -> list[str]:
    """What differs between two run folders: weights, optimizer state, epochs, logged numbers."""
    x, y = _load(a), _load(b)
    found = [k for k in x["model"] if not torch.equal(x["model"][k], y["model"][k])]
    for key, state in x["optimizer"]["state"].items():
        found += [f"optimizer {key}.{n}" for n, v in state.items() if not torch.equal(v, y["optimizer"]["state"][key][n])]
    if x["epoch"] != y["epoch"] or x["scheduler"] != y["scheduler"]:
        found.append("epoch or scheduler")
    if _history(a) != _history(b):
        found.append("metrics.jsonl")
    return found


def _max_weight_difference(a: Path, b: Path) -> float:
    x, y = _load(a)["model"], _load(b)["model"]
    return max((x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].is_floating_point())


@pytest.fixture(scope="module")
def solo(tmp_path_factory) -> Path:
    """The four runs, each trained alone (fit: one run per call)."""
    ck = tmp_path_factory.mktemp("solo")
    for cfg in _cfgs(ck):
        training.fit(cfg, show_progress=False)
    return ck


@pytest.mark.slow  # 10 s measured on a loaded 2-core CPU (tests/README.md)
def test_stacked_run_by_run_equals_each_run_trained_alone_bit_for_bit(solo, tmp_path):
    cfgs = _cfgs(tmp_path)
    result = fit_stacked(cfgs, impl="loop", show_progress=False)
    assert result.failures == {}
    for cfg in cfgs:
        assert _same(tmp_path / cfg.run, solo / cfg.run) == [], cfg.run
        assert _load(tmp_path / cfg.run)["epoch"] == 2
    # The control: the runs differ from each other (alpha, defense, lr are not ignored).
    assert _same(solo / "pgd-a0", solo / "pgd-a0.5") and _same(solo / "trades-a0", solo / "trades-a2")


@pytest.mark.slow  # 16 s of CPU (76 s of wall time on the loaded 2-core machine): four solo runs, then the stack
def test_runs_of_other_seeds_stack_each_on_its_own_batches_bit_for_bit(tmp_path):
    # train --seeds --stack on: one stack for every seed, each run drawing its own data order,
    # augmentation, starts and dropout, exactly as alone (run by run on the CPU).
    cfgs = [dataclasses.replace(c, epochs=1, seed=seed, run=f"{c.run}-s{seed}")
            for c, seed in zip(_cfgs(tmp_path / "stacked"), (0, 1, 0, 1))]
    alone = tmp_path / "alone"
    for cfg in cfgs:
        training.fit(dataclasses.replace(cfg, checkpoint_dir=str(alone)), show_progress=False)
    result = fit_stacked(cfgs, impl="loop", show_progress=False)
    assert result.failures == {}
    for cfg in cfgs:
        assert _same(tmp_path / "stacked" / cfg.run, alone / cfg.run) == [], cfg.run
    # The control: another seed is another run.
    other = dataclasses.replace(cfgs[1], seed=0, checkpoint_dir=str(tmp_path / "other"))
    training.fit(other, show_progress=False)
    assert _same(tmp_path / "other" / other.run, alone / cfgs[1].run)
    # Not with a held-out split: each seed carves its own.
    with pytest.raises(WmrbenchError, match="carve their held-out split"):
        fit_stacked([dataclasses.replace(c, val_size=100, checkpoint_dir=str(tmp_path / "val")) for c in cfgs],
                    impl="loop", show_progress=False)


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_stacked_through_vmap_stays_within_the_stated_tolerance(solo, tmp_path):
    cfgs = [dataclasses.replace(c, epochs=1) for c in _cfgs(tmp_path)]
    fit_stacked(cfgs, impl="vmap", show_progress=False)
    alone = tmp_path / "alone"
    for cfg in cfgs:  # the solo runs' first epoch
        training.fit(dataclasses.replace(cfg, checkpoint_dir=str(alone)), show_progress=False)
    for cfg in cfgs:
        difference = _max_weight_difference(tmp_path / cfg.run, alone / cfg.run)
        print(f"vmap vs alone after one epoch, {cfg.run}: largest weight difference {difference:.2e}")
        assert difference <= VMAP_WEIGHT_TOLERANCE, (cfg.run, difference)


@pytest.mark.slow  # 4 s measured on a loaded 2-core CPU (tests/README.md)
def test_a_stacked_sweep_stopped_and_resumed_equals_one_uninterrupted(solo, tmp_path):
    cfgs = _cfgs(tmp_path)
    # One epoch for every run, then one run loses its checkpoint (killed before it saved).
    fit_stacked(cfgs, impl="loop", stop_after_epochs=1, show_progress=False)
    assert all(_load(tmp_path / c.run)["epoch"] == 1 for c in cfgs)
    for name in ("last.pt", "metrics.jsonl"):
        (tmp_path / "trades-a2" / name).unlink()
    # Resumed: three runs continue from epoch 1 (stacked), the fourth starts over (alone), and
    # each ends exactly where it ends trained alone without a stop.
    result = fit_stacked(cfgs, impl="loop", resume=True, missing_ok=True, show_progress=False)
    assert result.failures == {}
    for cfg in cfgs:
        assert _same(tmp_path / cfg.run, solo / cfg.run) == [], cfg.run


@pytest.mark.slow  # 3 s, and its fixture 5 s, measured on a loaded 2-core CPU (tests/README.md)
def test_a_run_that_diverges_stops_alone_and_the_others_go_on(solo, tmp_path):
    cfgs = _cfgs(tmp_path)
    # The second run's lr is multiplied by 1e7 at its milestone: epoch 2 diverges.
    cfgs[1] = dataclasses.replace(cfgs[1], gamma=1e7)
    result = fit_stacked(cfgs, impl="loop", show_progress=False)
    assert list(result.failures) == ["pgd-a0.5"]
    assert "the last good checkpoint" in result.failures["pgd-a0.5"] and "(epoch 1) is kept" in result.failures["pgd-a0.5"]
    assert _load(tmp_path / "pgd-a0.5")["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in _load(tmp_path / "pgd-a0.5")["model"].values() if v.is_floating_point())
    for cfg in (cfgs[0], cfgs[2], cfgs[3]):  # untouched by their neighbour's NaNs
        assert _same(tmp_path / cfg.run, solo / cfg.run) == [], cfg.run


@pytest.mark.slow  # 3 s measured on a loaded 2-core CPU (tests/README.md)
def test_stack_on_through_the_cli_and_its_refusals(tmp_path):
    common = ("train", "--dataset", "digits", "--defense", "trades", "--arch", "digitsnet", "--steps", "1", "--epochs", "1",
              "--device", "cpu", "--quiet", "--checkpoint-dir", str(tmp_path), "--run", "s")
    # alpha_train 500 overflows the weights: that run stops alone, the other finishes (exit 2 names it).
    out = invoke(*common, "--alpha-train", "0,500", "--stack", "on")
    line = assert_one_line_error(out, "run 's-a500' diverged", "the other runs went on")
    assert "--alpha-train (now 500)" in line
    assert _load(tmp_path / "s-a0")["epoch"] == 1 and not (tmp_path / "s-a500" / "last.pt").exists()
    # A run that cannot stack is refused with one line, before any work.
    out = invoke(*common[:-1], "t", "--alpha-train", "0,2", "--stack", "on", "--attack-mode", "train")
    assert_one_line_error(out, "--stack on:", "--attack-mode train", "use --stack off")
    assert not (tmp_path / "t-a0").exists()
    out = invoke(*common[:-1], "u", "--alpha-train", "0,2", "--stack", "sideways")
    assert_one_line_error(out, "stack")


def _one_step_runs(cfgs: list[TrainConfig]) -> list[SimpleNamespace]:
    runs = []
    for cfg in cfgs:
        model, optimizer, _ = training.loop.build(cfg, torch.device("cpu"))
        runs.append(SimpleNamespace(cfg=cfg, model=model, optimizer=optimizer))
    return runs


@pytest.fixture(scope="module")
def mnist_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """32 real MNIST test images when ../shared/data has them (else random ones, said so)."""
    mnist = SHARED_DATA / "mnist"
    if not mnist.is_dir():
        print(f"no MNIST at {mnist}: random 28x28 images instead")
        return torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    from wmrbench.data import load_split
    test = load_split("mnist", str(mnist), train=False)
    index = torch.arange(32)
    return test.images(index).float(), test.y[index]


# "loop" is the fast tier's test of wmrbench/training/stacked.py (3 s measured on a loaded 2-core CPU)
@pytest.mark.parametrize("impl", ["loop", pytest.param("vmap", marks=pytest.mark.slow)])
def test_one_stacked_step_of_the_mnist_smallcnn_equals_its_solo_steps(impl, mnist_batch):
    """SmallCNN (dropout) on MNIST: one stacked step of four runs against each run's own train_step."""
    x, y = mnist_batch
    cfgs = [train_config("mnist", defense, alpha_train=alpha, steps=3, device="cpu", run=f"{defense}-{alpha}")
            for defense, alpha in (("pgd", 0.0), ("pgd", 0.5), ("trades", 0.0), ("trades", 2.0))]
    solo, stacked = _one_step_runs(cfgs), _one_step_runs(cfgs)
    seeds = [training.stream_seed(c.seed, 0, 0, training.ATTACK) for c in cfgs]
    for run, seed in zip(solo, seeds):
        torch.manual_seed(training.stream_seed(run.cfg.seed, 0, 0, training.DROPOUT))
        objective, _ = training.train_step(run.model, x, y, run.cfg, torch.Generator().manual_seed(seed), run.cfg.precision)
        run.optimizer.zero_grad(set_to_none=True)
        objective.loss.backward()
        run.optimizer.step()
    net = StackedNet([r.model for r in stacked], impl)
    masks = _Masks(net, cfgs, 0, 0, torch.device("cpu"), torch.float32)
    stacked_step(net, stacked, x, y, [torch.Generator().manual_seed(s) for s in seeds], masks)
    for a, b in zip(solo, stacked):
        for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
            if impl == "loop":
                assert torch.equal(p, q), (a.cfg.run, name)
            else:  # measured: SmallCNN's stacked forward is bit for bit, its backward within rounding
                assert (p - q).abs().max().item() <= 1e-5, (a.cfg.run, name)
