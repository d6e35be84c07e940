"""How far the PGD-20 attack is from the hardware: FLOPs per attacked image, counted with
torch.utils.flop_counter.FlopCounterMode over wmrbench.attacks' own attack (forward + input-gradient
backward per step, plus the final forward), divided by the measured time -> achieved FLOP/s,
compared with large bf16 / fp32 matrix products measured in the same run.

FlopCounterMode counts matrix products and convolutions (elementwise work is not counted, as
is usual for model FLOPs); with the parameters frozen it counts no weight gradients.

    python benchmarks/roofline.py --quick          # CPU, < 2 minutes on 2 cores
    python benchmarks/roofline.py                  # GPU: 10,000 images per model
"""

from __future__ import annotations

import copy
from typing import Any

from _common import command_line, environment, median, parser, print_table, resolve_device, timed, write_result

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from wmrbench.attacks import attack_mode
from wmrbench.core.runtime import prepare_model

from attack import DATA, EPS, STEP, STEPS, TORCHATTACKS, make_task, over_batches, torchattacks_attack, wmrbench_attack


def attack_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(FLOPs per image for one PGD step, FLOPs per image for the whole PGD-20 attack).

    One step is wmrbench.attacks.pgd's step: a forward and a backward to the input, in attack mode
    (parameters frozen). Written with ``backward`` here because FlopCounterMode's module
    tracker does not support ``torch.autograd.grad``, which the attack uses; the work is the same.
    """
    model = copy.deepcopy(model).cpu().float()
    x, y = x.cpu().float(), y.cpu()
    with attack_mode(model):
        with FlopCounterMode(display=False) as counter:
            x_adv = x.clone().requires_grad_(True)
            F.cross_entropy(model(x_adv), y, reduction="sum").backward()
        step = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        forward = counter.get_total_flops()
    return step / len(y), (STEPS * step + forward) / len(y)


def matmul_rate(dtype: torch.dtype, device: torch.device, size: int, iters: int, tf32: bool = False) -> float:
    """FLOP/s of a size^3 matrix product (best of three timed groups of ``iters``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        for _ in range(2):
            a @ b
        best = min(timed(lambda: [a @ b for _ in range(iters)], device)[0] for _ in range(3))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * size**3 * iters / best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("roofline", __doc__.splitlines()[0])
    p.add_argument("--arch", action="append", choices=sorted(DATA), help="model(s) (default both)")
    p.add_argument("--n", type=int, default=None, help="images timed (default 10,000 on CUDA; quick 4 / 32 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="default 1000 on CUDA")
    p.add_argument("--compile", action="store_true", help="also time wmrbench with torch.compile (CUDA)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or 3

    size, iters = (8192, 20) if cuda else (2048, 2)
    peaks = {"bf16 matmul": matmul_rate(torch.bfloat16, device, size, iters),
             "fp32 matmul": matmul_rate(torch.float32, device, size, max(2, iters // 4))}
    if cuda:
        peaks["tf32 matmul"] = matmul_rate(torch.float32, device, size, iters, tf32=True)
    print("  " + "  ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()), flush=True)

    rows = []
    for arch in args.arch or ["resnet18", "smallcnn"]:
        n, batch = (10000, 1000) if cuda else ((4, 4) if arch == "resnet18" else (32, 32))
        if not args.quick and not cuda:
            n, batch = (16, 16) if arch == "resnet18" else (256, 256)
        task = make_task(arch, args.n or n, args.batch_size or batch, device)
        step_flops, image_flops = attack_flops(task.model, task.x[:2], task.y[:2])
        paths = {}
        if cuda:
            fast_model = prepare_model(copy.deepcopy(task.model), device)
            paths["wmrbench bf16 (default)"] = ("bf16 matmul", wmrbench_attack(fast_model, "bf16"))
            paths["wmrbench fp32"] = ("tf32 matmul", wmrbench_attack(fast_model, "fp32"))
            if args.compile:
                paths["wmrbench bf16 + torch.compile"] = (
                    "bf16 matmul", wmrbench_attack(fast_model, "bf16", compile_model=True))
        else:
            paths["wmrbench fp32 (default)"] = ("fp32 matmul", wmrbench_attack(task.model, "fp32"))
        try:
            paths[TORCHATTACKS] = ("tf32 matmul" if cuda else "fp32 matmul", torchattacks_attack(task.model))
        except ImportError as exc:
            print(f"  skipped torchattacks: {exc}")
        for name, (peak_name, attack) in paths.items():
            edge = task.spans[:1] + task.spans[-1:]
            timed(lambda: over_batches(task, attack, edge), device)
            seconds = median([timed(lambda: over_batches(task, attack), device)[0] for _ in range(repeats)])
            achieved = image_flops * len(task.y) / seconds
            rows.append({
                "model": arch, "path": name, "GFLOP per image-step": step_flops / 1e9,
                "GFLOP per attacked image": image_flops / 1e9, "images/s": len(task.y) / seconds,
                "achieved TFLOP/s": achieved / 1e12, "vs": peak_name,
                "peak TFLOP/s": peaks[peak_name] / 1e12, "fraction of peak": achieved / peaks[peak_name],
                "fraction of bf16 matmul": achieved / peaks["bf16 matmul"],
            })
    env = environment(device)
    tables = [print_table(rows, f"PGD-{STEPS} against the matmul roofline on {env['device']} (median of {repeats})"),
              print_table([{k: v / 1e12 for k, v in peaks.items()}], "measured matmul TFLOP/s")]
    payload = {
        "benchmark": "roofline", "command": command_line(), "environment": env,
        "settings": {"eps": EPS, "step_size": STEP, "steps": STEPS, "matmul_size": size, "repeats": repeats,
                     "quick": args.quick},
        "peaks_flops": peaks, "rows": rows, "tables": tables,
    }
    write_result(args, "roofline", payload)
    return payload


if __name__ == "__main__":
    main()
