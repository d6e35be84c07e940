"""A_tr for three alpha_test values: one attacks.pgd call on the batch stacked three times, each
copy with its alpha (a per-example alpha tensor), against three sequential calls.

Starts are keyed on (seed, example index), so both must give the same points; the table shows
whether they do (exactly on the CPU path) beside the times.

    python benchmarks/sweep.py --quick             # CPU, < 2 minutes on 2 cores
    python benchmarks/sweep.py                     # GPU: 5,000 CIFAR-10-shaped images, ResNet-18
"""

from __future__ import annotations

import copy
from typing import Any

from _common import alternate, command_line, environment, median, parser, print_table, resolve_device, write_result

import torch
from torch import Tensor

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, Start
from wmrbench.core.runtime import prepare_input, prepare_model

from attack import DATA, EPS, STEP, STEPS, Task, make_task

ALPHAS = (1.0, 1.5, 2.0)


def run(task: Task, precision: str, stacked: bool) -> tuple[Tensor, Tensor]:
    """Weighted PGD for every alpha over the task -> (x_adv, margin), alpha-major."""
    device = task.x.device
    k = len(ALPHAS)
    xs: list[list[Tensor]] = [[] for _ in ALPHAS]
    margins: list[list[Tensor]] = [[] for _ in ALPHAS]
    for lo, hi in task.spans:
        index = torch.arange(lo, hi, device=device)
        x, y = prepare_input(task.x[lo:hi], device), task.y[lo:hi]
        attack = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=Start.UNIFORM)
        common = dict(seed=0, precision=precision)
        if stacked:
            n = hi - lo
            alpha = torch.tensor(ALPHAS, device=device).repeat_interleave(n)
            r = attacks.pgd(task.model, x.repeat(k, 1, 1, 1), y.repeat(k), attack, alpha=alpha, index=index.repeat(k), **common)
            for j in range(k):
                xs[j].append(r.x_adv[j * n:(j + 1) * n])
                margins[j].append(r.margin[j * n:(j + 1) * n])
        else:
            for j, a in enumerate(ALPHAS):
                r = attacks.pgd(task.model, x, y, attack, alpha=a, index=index, **common)
                xs[j].append(r.x_adv)
                margins[j].append(r.margin)
    return torch.cat([torch.cat(v) for v in xs]), torch.cat([torch.cat(v) for v in margins])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("sweep", __doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18", choices=sorted(DATA), help="model (default resnet18)")
    p.add_argument("--n", type=int, default=None, help="images (default 5,000 on CUDA; quick 4 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch before stacking (default 500 on CUDA)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or (5 if cuda or not args.quick else 3)
    n, batch = (5000, 500) if cuda else ((4, 4) if args.quick else (16, 16))
    if args.arch == "smallcnn" and not cuda:
        n, batch = (64, 64) if args.quick else (512, 256)
    task = make_task(args.arch, args.n or n, args.batch_size or batch, device)
    precision = "bf16" if cuda else "fp32"
    if cuda:
        task = Task(task.arch, prepare_model(copy.deepcopy(task.model), device), task.x, task.y, task.batch_size)
    n = len(task.y)
    print(f"{args.arch}: {n} {DATA[args.arch]} images, batch {task.batch_size} x {len(ALPHAS)} alphas, PGD-{STEPS}", flush=True)
    times, outputs = alternate(
        {"stacked (one call)": lambda: run(task, precision, True), "sequential (3 calls)": lambda: run(task, precision, False)},
        repeats, device,
    )
    (x_st, m_st), (x_seq, m_seq) = outputs["stacked (one call)"], outputs["sequential (3 calls)"]
    t_seq = median(times["sequential (3 calls)"])
    rows = [{
        "model": args.arch, "variant": name, "images x alphas": n * len(ALPHAS), "median s": median(t),
        "attacked images/s": n * len(ALPHAS) / median(t), "speed-up vs sequential": t_seq / median(t),
    } for name, t in times.items()]
    env = environment(device)
    check = {
        "x_adv identical": bool(torch.equal(x_st, x_seq)), "margins identical": bool(torch.equal(m_st, m_seq)),
        "coords differing": ((x_st - x_seq).abs() > 1e-6).float().mean().item(),
        "max |margin diff|": (m_st - m_seq).abs().max().item(),
    }
    tables = [print_table(rows, f"A_tr sweep, alphas {ALPHAS}, on {env['device']} ({precision}, median of {repeats} alternating runs)"),
              print_table([check], "stacked == sequential?")]
    payload = {
        "benchmark": "sweep", "command": command_line(), "environment": env,
        "settings": {"eps": EPS, "step_size": STEP, "steps": STEPS, "alphas": ALPHAS, "precision": precision,
                     "repeats": repeats, "quick": args.quick},
        "rows": rows, "check": check, "times": times, "tables": tables,
    }
    write_result(args, "sweep", payload)
    return payload


if __name__ == "__main__":
    main()
