"""The training pipeline with device augmentation: wired to cfg.augment, resumed exactly, and
optionally run through torch.compile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from wmrbench.core.attack_config import Precision
from wmrbench.core.config import DatasetName, Defense
from wmrbench.core.presets import describe_train_config, train_config
from wmrbench.models.checkpoint import read_checkpoint
from wmrbench.core.runtime import autocast_dtype
from wmrbench.training import fit


def _cfg(tmp_path: Path, run: str, **overrides):
    values = dict(alpha_train=2.0, steps=1, epochs=2, batch_size=512, augment=True, device="cpu",
                  checkpoint_dir=str(tmp_path), seed=3)
    values.update(overrides)
    return train_config(DatasetName.DIGITS, Defense.TRADES, run=run, **values)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


@pytest.mark.slow  # 8 s measured on a loaded 2-core CPU (tests/README.md)
def test_augmentation_is_applied_and_resume_is_exact(tmp_path: Path) -> None:
    straight = fit(_cfg(tmp_path, "straight"), show_progress=False)
    first = fit(_cfg(tmp_path, "pieces"), stop_after_epochs=1, show_progress=False)
    after_one = _weights(first.checkpoint)
    resumed = fit(_cfg(tmp_path, "pieces"), resume=True, show_progress=False)
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the crops and flips of epoch 2 came back too
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]

    plain = fit(_cfg(tmp_path, "plain", augment=False), stop_after_epochs=1, show_progress=False)
    c = _weights(plain.checkpoint)
    assert not all(torch.equal(after_one[k], c[k]) for k in c)  # cfg.augment changes what is trained on


@pytest.mark.slow  # 11 s measured on a loaded 2-core CPU: two one-step trainings on digits
def test_explicit_bf16_is_honoured_on_the_cpu(tmp_path: Path) -> None:
    """An explicit bf16 on the CPU trains in bf16 autocast, not silently in fp32: one step from
    the same start, data and attack draws lands on other weights than fp32's, and the run
    records bf16."""
    assert autocast_dtype(Precision.BF16) is torch.bfloat16
    assert autocast_dtype(Precision.FP32) is None
    one_step = dict(epochs=1, max_steps=1, n_train=256, batch_size=256, augment=False)
    runs = {p: fit(_cfg(tmp_path, p.value, precision=p, **one_step), show_progress=False) for p in Precision}
    saved = {p: read_checkpoint(r.checkpoint) for p, r in runs.items()}
    assert {p: s["config"]["precision"] for p, s in saved.items()} == {p: p.value for p in Precision}
    bf16, fp32 = saved[Precision.BF16]["model"], saved[Precision.FP32]["model"]
    assert set(bf16) == set(fp32) and all(bf16[k].dtype == fp32[k].dtype for k in fp32)  # weights stay fp32
    assert not all(torch.equal(bf16[k], fp32[k]) for k in fp32), "bf16 trained exactly as fp32: autocast was off"


@pytest.mark.slow  # inductor's first compile: 80 s measured on a shared, heavily loaded 2-core CPU
def test_compile_trains_the_shared_model_and_is_recorded(tmp_path: Path) -> None:
    """--compile: the compiled module serves the training forward, the attack runs the eager one;
    checkpoints hold the plain model's state_dict (no _orig_mod. prefixes). One epoch of one
    batch keeps it to a single compiled graph."""
    # one batch per epoch (1,437 digits): one graph to compile, no recompile for a smaller last batch
    cfg = _cfg(tmp_path, "compiled", epochs=1, compile=True, batch_size=2048, augment=False)
    assert "  compile: True" in describe_train_config(cfg)
    from torch._dynamo.utils import counters

    counters.clear()
    result = fit(cfg, show_progress=False)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo did capture the training forward
    saved = read_checkpoint(result.checkpoint)
    assert saved["config"]["compile"] is True
    eager = fit(dataclasses.replace(cfg, run="eager", compile=False), show_progress=False)
    plain = _weights(eager.checkpoint)
    assert set(saved["model"]) == set(plain)
    # same data, same draws: the compiled step differs from the eager one only by rounding
    for key, value in saved["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, plain[key], rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: checks that a training step never waits for the host")
def test_a_training_step_on_cuda_makes_no_host_sync() -> None:
    """Augmentation, attack, loss, backward and optimizer step of one batch with CUDA's sync
    debug mode set to error: any device-to-host read (an .item(), a bool of a tensor) raises."""
    from wmrbench.data.augment import random_crop_flip
    from wmrbench.models import create_model
    from wmrbench.core.runtime import prepare_input, prepare_model
    from wmrbench.training import train_step

    device = torch.device("cuda")
    cfg = train_config(DatasetName.CIFAR10, Defense.TRADES, run="sync", alpha_train=2.0, steps=3,
                             device="cuda", precision=Precision.BF16)
    model = prepare_model(create_model("tinycnn"), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, device=device).float().div_(255)
    y = torch.randint(0, 10, (128,), device=device)
    attack_gen = torch.Generator(device=device).manual_seed(0)
    augment_gen = torch.Generator(device=device).manual_seed(1)
    for sync_mode in ("default", "error"):  # the first step warms up (cuDNN autotuning may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode(sync_mode)
        try:
            xb = prepare_input(random_crop_flip(x, augment_gen), device)
            objective, margin = train_step(model, xb, y, cfg, attack_gen, Precision.BF16)
            optimizer.zero_grad(set_to_none=True)
            objective.loss.backward()
            optimizer.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(objective.loss).item() and margin.shape == (128,)
