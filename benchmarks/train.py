"""TRADES+ours training (alpha_train 2, 10-step KL attack, eps 0.031, step 0.007, beta 6, batch
128) on ResNet-18 with CIFAR-10-shaped data: wmrbench against a plain fp32 loop.

* wmrbench: ``training.train_step`` with its TrainConfig, the data resident on the device, the
  loop ``wmrbench train`` runs (bf16 autocast + channels_last + the attack's CUDA graph on CUDA;
  ``--precision`` picks bf16 and/or fp32).
* plain fp32 loop, built from pieces that are not ours: a torch DataLoader over a TensorDataset,
  torchattacks' TPGD (TRADES' KL attack), and the weighted TRADES loss written out plainly.

A run is a fixed number of batches (an "epoch-equivalent"); the time is extrapolated to
50,000 images (one CIFAR-10 epoch).

    python benchmarks/train.py --quick             # CPU, < 2 minutes on 2 cores
    python benchmarks/train.py                     # GPU: 100 batches of 128, bf16 and fp32
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from _common import alternate, command_line, environment, median, parser, print_table, resolve_device, write_result

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench.config import PRESETS, DatasetName, Defense, Precision, TrainConfig, build_train_config
from wmrbench.data import ImageSet, batches
from wmrbench.models import create_model
from wmrbench.runtime import prepare_input, prepare_model
from wmrbench.training import train_step

CIFAR_EPOCH = 50_000
ALPHA_TRAIN, BETA, EPS, STEP, STEPS = 2.0, 6.0, 0.031, 0.007, 10
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 2e-4


def config(batch_size: int, precision: Precision, device: torch.device) -> TrainConfig:
    # The CIFAR-10 preset where this checkout has one; its numbers do not change the work.
    dataset = DatasetName.CIFAR10 if (DatasetName.CIFAR10, Defense.TRADES) in PRESETS else DatasetName.DIGITS
    return build_train_config(
        dataset, Defense.TRADES, arch="resnet18", alpha_train=ALPHA_TRAIN, beta=BETA, eps=EPS,
        step_size=STEP, steps=STEPS, batch_size=batch_size, lr=LR, momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY, device=str(device), precision=precision,
    )


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


Epoch = Callable[[int | None], Tensor]  # (batches or None for all) -> mean loss (device tensor)


def wmrbench_epoch(model: nn.Module, data: ImageSet, cfg: TrainConfig, device: torch.device) -> Epoch:
    """The loop of training._train_epoch: train_step, backward, step; sums stay on the device."""
    model = prepare_model(model, device)
    optimizer = sgd(model)
    shuffle = torch.Generator().manual_seed(0)
    attack_rng = torch.Generator(device=device).manual_seed(1)

    def epoch(limit: int | None = None) -> Tensor:
        order = torch.randperm(len(data), generator=shuffle)  # a full permutation, as fit() gives
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for step, (_, x, y) in enumerate(batches(data, cfg.batch_size, order)):
            if limit is not None and step == limit:
                break
            objective, adv_margin = train_step(model, prepare_input(x, device), y, cfg, attack_rng, cfg.precision)
            optimizer.zero_grad(set_to_none=True)
            objective.loss.backward()
            optimizer.step()
            loss_sum += objective.loss.detach() * len(y)
            correct += (adv_margin > 0).sum()
            seen += len(y)
        return loss_sum / seen

    return epoch


def plain_epoch(model: nn.Module, x: Tensor, y: Tensor, batch_size: int, device: torch.device) -> Epoch:
    """DataLoader + torchattacks.TPGD + the weighted TRADES loss, fp32, written plainly."""
    import torchattacks

    optimizer = sgd(model)
    tpgd = torchattacks.TPGD(model, eps=EPS, alpha=STEP, steps=STEPS)
    dataset = torch.utils.data.TensorDataset(x, y)
    shuffle = torch.Generator().manual_seed(0)

    def epoch(limit: int | None = None) -> Tensor:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=shuffle,
                                             pin_memory=device.type == "cuda")
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for step, (xb, yb) in enumerate(loader):
            if limit is not None and step == limit:
                break
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            x_adv = tpgd(xb)  # eval mode inside, restored after
            model.train()
            optimizer.zero_grad()
            logits_nat, logits_adv = model(xb), model(x_adv)
            p_adv = F.softmax(logits_adv, dim=1)
            p_true = p_adv.gather(1, yb[:, None]).squeeze(1)
            p_other = p_adv.masked_fill(F.one_hot(yb, 10).bool(), -1.0).max(dim=1).values
            weight = torch.exp(-ALPHA_TRAIN * (p_true - p_other))
            kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1), reduction="none").sum(1)
            loss = F.cross_entropy(logits_nat, yb) + BETA * (weight * kl).mean()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(yb)
            seen += len(yb)
        return loss_sum / seen

    return epoch


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("train", __doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=None, help="batches per epoch-equivalent (default 100 on CUDA; quick 2)")
    p.add_argument("--batch-size", type=int, default=None, help="default 128 (the paper's); quick 16")
    p.add_argument("--precision", default=None, help="wmrbench precisions, comma-separated (default bf16,fp32 on CUDA; fp32 on CPU)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or (3 if cuda or not args.quick else 2)
    batch_size = args.batch_size or (16 if args.quick and not cuda else 128)
    n_batches = args.batches or (100 if cuda else (2 if args.quick else 4))
    precisions = [Precision(v.strip()) for v in (args.precision or ("bf16,fp32" if cuda else "fp32")).split(",")]
    n = n_batches * batch_size

    generator = torch.Generator().manual_seed(0)
    x_uint8 = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    torch.manual_seed(0)
    init = create_model("resnet18", 10, 3)
    print(f"TRADES+ours (alpha_train {ALPHA_TRAIN}), ResNet-18, {n_batches} batches of {batch_size} "
          f"CIFAR-10-shaped images, {STEPS}-step attack", flush=True)

    variants: dict[str, Epoch] = {}
    on_device = ImageSet(x_uint8, y).to(device)
    for precision in precisions:
        cfg = config(batch_size, precision, device)
        variants[f"wmrbench {precision.value}"] = wmrbench_epoch(copy.deepcopy(init), on_device, cfg, device)
    try:
        variants["plain fp32 loop (DataLoader + torchattacks TPGD)"] = plain_epoch(
            copy.deepcopy(init).to(device), x_uint8.float().div(255), y, batch_size, device)
    except ImportError as exc:
        print(f"  skipped the plain loop: {exc}")
    times, outputs = alternate(
        {name: (lambda e=e: e(None)) for name, e in variants.items()}, repeats, device,
        warmups={name: (lambda e=e: e(1)) for name, e in variants.items()},
    )
    plain = next((median(t) for name, t in times.items() if name.startswith("plain")), None)
    rows = []
    for name, seconds in times.items():
        t = median(seconds)
        rows.append({
            "variant": name, "images": n, "median s": t, "images/s": n / t,
            "s per 50k-image epoch": t * CIFAR_EPOCH / n, "speed-up vs plain loop": plain / t if plain else None,
            "final loss": outputs[name].item(),
        })
    env = environment(device)
    tables = [print_table(rows, f"TRADES+ours training on {env['device']} (median of {repeats} alternating runs)")]
    payload = {
        "benchmark": "train", "command": command_line(), "environment": env,
        "settings": {"arch": "resnet18", "defense": "trades", "alpha_train": ALPHA_TRAIN, "beta": BETA, "eps": EPS,
                     "step_size": STEP, "steps": STEPS, "batch_size": batch_size, "batches": n_batches,
                     "precisions": [p.value for p in precisions], "repeats": repeats, "quick": args.quick},
        "rows": rows, "times": times, "tables": tables,
    }
    write_result(args, "train", payload)
    return payload


if __name__ == "__main__":
    main()
