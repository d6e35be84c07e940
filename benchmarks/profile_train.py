"""Where the time of one training step goes: torch.profiler on the MNIST SmallCNN TRADES+ours step
(the paper's setting: batch 128, 40-step KL attack of 0.01 at eps 0.3, beta 6, alpha_train 2).

The profiled code is wmrbench's own epoch loop (``training.step.train_epoch``, the loop ``wmrbench
train`` runs, with its running sums and its read-back once per ``log_every`` steps) over a few
batches of MNIST-shaped data, after one warm-up batch. Printed: the top operators by self time,
the time per group (convolutions, pooling, ReLU, linear layers, the attack's update, softmax and
losses, the optimizer, allocation), how much of the wall time no operator accounts for (Python,
the autograd engine's bookkeeping, launches), and the host reads (``aten::_local_scalar_dense``:
a GPU would wait there) per step.

    python benchmarks/profile_train.py --quick      # CPU: 2 profiled steps (~1 minute on 2 cores)
    python benchmarks/profile_train.py              # CUDA when present: 20 profiled steps
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, sync, write_result

import torch
from torch.profiler import ProfilerActivity, profile

from wmrbench.core import distributed

from wmrbench import training
from wmrbench.core.config import DatasetName, Defense
from wmrbench.data import ImageSet
from wmrbench.core.presets import train_config
from wmrbench.core.progress import progress_bar

# Operator name fragments -> group (first match wins; order matters).
GROUPS = (
    ("convolution", ("convolution", "conv2d", "mkldnn_conv", "cudnn_conv")),
    ("max pooling", ("max_pool",)),
    ("ReLU", ("relu", "threshold", "clamp_min")),
    ("linear layers", ("addmm", "aten::mm", "aten::linear", "gemm")),
    ("attack update (sign, clamp, add)", ("aten::sign", "aten::clamp", "aten::add")),
    ("softmax, losses, margins", ("softmax", "kl_div", "nll", "cross_entropy", "exp", "gather", "amax", "masked_fill")),
    ("optimizer (SGD)", ("sgd", "_foreach", "aten::mul_", "aten::add_")),
    ("allocation, copies, fills", ("empty", "fill_", "zero_", "copy_", "as_strided", "zeros", "ones")),
)


def group_of(name: str) -> str:
    lower = name.lower()
    for group, fragments in GROUPS:
        if any(f.lower() in lower for f in fragments):
            return group
    return "other operators"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("profile_train", __doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="profiled training steps (default 20 on CUDA; quick 2 on CPU)")
    p.add_argument("--top", type=int, default=15, help="operators in the top table (default 15)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (20 if cuda else (2 if args.quick else 4))
    cfg = train_config(DatasetName.MNIST, Defense.TRADES, alpha_train=2.0, device=str(device), epochs=1,
                       checkpoint_dir="unused", log_every=20)
    batch = cfg.batch_size
    generator = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (batch * steps, 1, 28, 28), dtype=torch.uint8, generator=generator),
                    torch.randint(0, 10, (batch * steps,), generator=generator)).to(device)
    ctx = distributed.Context()
    # A run exactly as fit() builds it (fresh weights from the seed; nothing is saved).
    run = training.loop._start_run(cfg, training.task.named_task(cfg), {}, device, ctx, None)
    print(f"TRADES+ours step, smallcnn, batch {batch}, {cfg.attack.steps}-step attack, {cfg.precision.value}, "
          f"{steps} profiled steps on {environment(device)['device']}", flush=True)
    with progress_bar(enabled=False) as progress:
        training.step.train_epoch([run], ImageSet(data.x[:batch], data.y[:batch]), epoch=0, device=device,
                              progress=progress, ctx=ctx)  # warm-up: allocator, oneDNN / cuDNN set-up
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        sync(device)
        started = time.perf_counter()
        with profile(activities=activities) as prof:
            training.step.train_epoch([run], data, epoch=1, device=device, progress=progress, ctx=ctx)
            sync(device)
        wall = time.perf_counter() - started
    averages = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in averages if not e.key.startswith(("ProfilerStep", "autograd::engine::evaluate_function"))]
    total_self = sum(getattr(e, key) for e in events) / 1e6
    host_reads = sum(e.count for e in averages if e.key == "aten::_local_scalar_dense")
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[: args.top]
    top_rows = [{"operator": e.key, "calls": e.count, "self s": getattr(e, key) / 1e6,
                 "share of op time": getattr(e, key) / 1e6 / total_self} for e in top]
    grouped: dict[str, float] = defaultdict(float)
    for e in events:
        grouped[group_of(e.key)] += getattr(e, key) / 1e6
    group_rows = [{"group": g, "self s": t, "share of op time": t / total_self, "per step s": t / steps}
                  for g, t in sorted(grouped.items(), key=lambda kv: -kv[1])]
    where = "device" if cuda else "CPU"
    summary = {
        "steps": steps, "wall s": wall, "wall s per step": wall / steps, f"operator self {where} time s": total_self,
        "wall time outside operators (Python, autograd bookkeeping, launches)": max(0.0, 1 - total_self / wall) if not cuda else None,
        "host reads (aten::_local_scalar_dense) per step": host_reads / steps,
    }
    tables = [print_table(top_rows, f"top {args.top} operators by self {where} time"),
              print_table(group_rows, "by group"), print_table([summary], "summary")]
    print(averages.table(sort_by=key, row_limit=args.top))
    payload = {"benchmark": "profile_train", "command": command_line(), "environment": environment(device),
               "settings": {"arch": cfg.arch, "batch_size": batch, "attack_steps": cfg.attack.steps, "eps": cfg.attack.eps,
                            "step_size": cfg.attack.step_size, "alpha_train": cfg.alpha_train, "beta": cfg.beta,
                            "precision": cfg.precision.value, "profiled_steps": steps},
               "top": top_rows, "groups": group_rows, "summary": summary, "tables": tables}
    write_result(args, "profile_train", payload)
    return payload


if __name__ == "__main__":
    main()
