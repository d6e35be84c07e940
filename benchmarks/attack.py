"""PGD-20 (cross-entropy, eps 8/255, step 2/255): wmrbench.attacks.pgd against its peers on the same
model, batch and device.

Peers: torchattacks.PGD; AutoAttack's APGD-CE with 20 iterations (pyautoattack); and a plain
fp32 loop written the way the TRADES/MART authors' evaluation scripts are (``loss.backward()``
through the weights, projection by clamping the perturbation). Models: ResNet-18 on
CIFAR-10-shaped random inputs and SmallCNN on MNIST-shaped ones, with freshly initialised
weights; the labels are the model's own clean predictions, so every point starts correctly
classified and every attack (APGD skips misclassified points) works on all of them.

Weighted APGD (``attacks.apgd``, loss CE, 20 iterations, alpha 0 and alpha 2) runs beside them,
against the same pyautoattack APGD-CE: the column "speed-up vs APGD-CE" is the ratio of median
times (pyautoattack / variant). At alpha 0 it is APGD-CE itself; alpha 2 adds the weight's
gradient (a softmax and an exp per example per iteration). Their robust accuracies in the timing
table may differ: pyautoattack draws its own start (``x + eps * t / ||t||_inf``), wmrbench its
keyed uniform start.

Exactness: from the zero start, wmrbench and torchattacks must find the same points. Both are
run in fp32 and in float64 on a power-of-two batch (torchattacks averages the loss, wmrbench
sums it: a power-of-two factor scales every gradient exactly); the table shows max |diff| of
x_adv, the fraction of coordinates that differ, and both robust accuracies. Likewise wmrbench's
APGD at alpha 0 and pyautoattack's single APGD-CE run from the same (keyed uniform) start: robust
flags and best points (``x_best``).

    python benchmarks/attack.py --quick            # CPU, < 2 minutes on 2 cores
    python benchmarks/attack.py --quick --only "wmrbench APGD,AutoAttack"   # APGD against APGD
    python benchmarks/attack.py                    # GPU: 10,000 images per model
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _common import (
    alternate, command_line, environment, median, parser, print_table, resolve_device, timed,
    write_result,
)

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wmrbench import attacks
from wmrbench.core.attack_config import AttackConfig, Precision, Start
from wmrbench.models import create_model
from wmrbench.core.runtime import prepare_input, prepare_model

EPS, STEP, STEPS = 8 / 255, 2 / 255, 20
SHAPES = {"resnet18": (3, 32, 32), "smallcnn": (1, 28, 28)}
DATA = {"resnet18": "CIFAR-10-shaped", "smallcnn": "MNIST-shaped"}
TORCHATTACKS = "torchattacks PGD fp32"
PYAUTOATTACK = "AutoAttack APGD-CE fp32"


@dataclass
class Task:
    arch: str
    model: nn.Module  # fp32, NCHW: what a user's peer script gets
    x: Tensor
    y: Tensor
    batch_size: int

    @property
    def spans(self) -> list[tuple[int, int]]:
        n = len(self.y)
        return [(lo, min(lo + self.batch_size, n)) for lo in range(0, n, self.batch_size)]


def make_task(arch: str, n: int, batch_size: int, device: torch.device, seed: int = 0) -> Task:
    torch.manual_seed(seed)
    shape = SHAPES[arch]
    model = create_model(arch, 10, shape[0]).to(device).eval()
    for module in model.modules():
        # SmallCNN starts with a zero last layer (TRADES' init): every input gradient would be 0.
        if isinstance(module, nn.Linear) and not module.weight.any():
            module.reset_parameters()
    x = torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        y = torch.cat([model(x[lo:hi]).argmax(1) for lo, hi in Task(arch, model, x, x, batch_size).spans])
    return Task(arch, model, x, y, batch_size)


Attack = Callable[[Tensor, Tensor, Tensor], Tensor]  # (index, x, y) -> logits at x_adv


def over_batches(task: Task, attack: Attack, spans: list[tuple[int, int]] | None = None) -> Tensor:
    """Robust-correct count over the task's batches (a device tensor: no sync inside)."""
    correct = torch.zeros((), dtype=torch.int64, device=task.x.device)
    for lo, hi in spans or task.spans:
        index = torch.arange(lo, hi, device=task.x.device)
        logits = attack(index, task.x[lo:hi], task.y[lo:hi])
        correct += (logits.argmax(1) == task.y[lo:hi]).sum()
    return correct


def wmrbench_attack(model: nn.Module, precision: Precision | str, **fast: Any) -> Attack:
    device = next(model.parameters()).device
    config = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=Start.UNIFORM)

    def attack(index: Tensor, x: Tensor, y: Tensor) -> Tensor:
        result = attacks.pgd(model, prepare_input(x, device), y, config, index=index, seed=0,
                             precision=precision, **fast)
        return result.logits

    return attack


def wmrbench_apgd_attack(model: nn.Module, precision: Precision | str, alpha: float) -> Attack:
    """Weighted APGD-CE with STEPS iterations (APGD sets its own step size: 2 * eps, halved)."""
    device = next(model.parameters()).device
    config = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=Start.UNIFORM)

    def attack(index: Tensor, x: Tensor, y: Tensor) -> Tensor:
        result = attacks.apgd(model, prepare_input(x, device), y, config, alpha=alpha, index=index,
                              seed=0, precision=precision)
        return result.logits

    return attack


def torchattacks_attack(model: nn.Module) -> Attack:
    import torchattacks

    pgd = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=True)

    def attack(index: Tensor, x: Tensor, y: Tensor) -> Tensor:
        x_adv = pgd(x, y)
        with torch.no_grad():
            return model(x_adv)

    return attack


def apgd_attack(model: nn.Module) -> Attack:
    from pyautoattack.autopgd_base import APGDAttack

    apgd = APGDAttack(model, n_iter=STEPS, norm="Linf", eps=EPS, loss="ce", n_restarts=1, seed=0,
                      device=next(model.parameters()).device)

    def attack(index: Tensor, x: Tensor, y: Tensor) -> Tensor:
        x_adv = apgd.perturb(x, y)
        with torch.no_grad():
            return model(x_adv)

    return attack


def authors_loop_attack(model: nn.Module) -> Attack:
    """PGD as the authors' evaluation scripts write it: backward through the weights as well."""

    def attack(index: Tensor, x: Tensor, y: Tensor) -> Tensor:
        x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).requires_grad_(True)
        for _ in range(STEPS):
            loss = F.cross_entropy(model(x_adv), y)
            loss.backward()
            x_next = x_adv.detach() + STEP * x_adv.grad.sign()
            x_next = x + torch.clamp(x_next - x, -EPS, EPS)
            x_adv = torch.clamp(x_next, 0.0, 1.0).requires_grad_(True)
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            return model(x_adv)

    return attack


def same_points(task: Task, n: int, dtype: torch.dtype) -> dict[str, Any]:
    """wmrbench (eager) and torchattacks from the zero start, in ``dtype``, on n points."""
    import torchattacks

    model = copy.deepcopy(task.model).to(dtype)
    x, y = task.x[:n].to(dtype), task.y[:n]
    ours = attacks.pgd(model, x, y, AttackConfig(eps=EPS, step_size=STEP, steps=STEPS, start=Start.ZERO),
                       cuda_graph=False)
    x_peer = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=STEPS, random_start=False)(x, y)
    with torch.no_grad():
        acc_peer = (model(x_peer).argmax(1) == y).float().mean().item()
    diff = (ours.x_adv - x_peer).abs()
    return {
        "model": task.arch, "dtype": str(dtype).replace("torch.", ""), "images": n,
        "max |x_adv diff|": diff.max().item(),
        "coords differing": (diff > 1e-6).float().mean().item(),
        "robust acc wmrbench %": 100 * (ours.logits.argmax(1) == y).float().mean().item(),
        "robust acc torchattacks %": 100 * acc_peer,
    }


def same_apgd_points(task: Task, n: int) -> dict[str, Any]:
    """wmrbench's APGD at alpha 0 and pyautoattack's single APGD-CE run from one start, fp32."""
    from pyautoattack.autopgd_base import APGDAttack

    from wmrbench.attacks.apgd import ApgdLoss, _setup, run_from

    x, y, index = task.x[:n], task.y[:n], torch.arange(n, device=task.x.device)
    x_start = attacks.start_point(x, EPS, Start.UNIFORM, 0, index=index, seed=0)
    config = AttackConfig(eps=EPS, step_size=STEP, steps=STEPS)
    with attacks.attack_mode(task.model):
        ours = run_from(_setup(task.model, x, y, config, 0.0, ApgdLoss.CE, Precision.FP32), x_start, STEPS)
        peer = APGDAttack(task.model, n_iter=STEPS, norm="Linf", eps=EPS, loss="ce", seed=0, device=x.device)
        peer.init_hyperparam(x)
        x_best, robust, _, _ = peer.attack_single_run(x, y, x_init=x_start)
    return {
        "model": task.arch, "dtype": "float32", "images": n,
        "robust flags equal": bool(torch.equal(~ours.wrong, robust)),
        "max |x_best diff|": (ours.x_max - x_best).abs().max().item(),
        "robust acc wmrbench %": 100 * (~ours.wrong).float().mean().item(),
        "robust acc pyautoattack %": 100 * robust.float().mean().item(),
    }


def apgd_variants(task: Task, device: torch.device) -> dict[str, Attack]:
    model = prepare_model(copy.deepcopy(task.model), device) if device.type == "cuda" else task.model
    variants = {f"wmrbench APGD-CE alpha {a:g} fp32": wmrbench_apgd_attack(model, "fp32", a) for a in (0.0, 2.0)}
    if device.type == "cuda":
        variants["wmrbench APGD-CE alpha 2 bf16"] = wmrbench_apgd_attack(model, "bf16", 2.0)
    return variants


def variants_for(task: Task, device: torch.device, compile_model: bool) -> dict[str, Attack]:
    variants: dict[str, Attack] = {}
    if device.type == "cuda":
        fast_model = prepare_model(copy.deepcopy(task.model), device)  # channels_last, as evaluate does
        variants["wmrbench bf16 (default)"] = wmrbench_attack(fast_model, "bf16")
        variants["wmrbench fp32"] = wmrbench_attack(fast_model, "fp32")
        variants["wmrbench fp32, no CUDA graph"] = wmrbench_attack(fast_model, "fp32", cuda_graph=False)
        if compile_model:
            variants["wmrbench bf16 + torch.compile"] = wmrbench_attack(fast_model, "bf16", compile_model=True)
    else:
        variants["wmrbench fp32 (default)"] = wmrbench_attack(task.model, "fp32")
    try:
        variants[TORCHATTACKS] = torchattacks_attack(task.model)
    except ImportError as exc:
        print(f"  skipped torchattacks: {exc}")
    try:
        variants[PYAUTOATTACK] = apgd_attack(task.model)
    except ImportError as exc:
        print(f"  skipped APGD: {exc}")
    variants.update(apgd_variants(task, device))
    variants["authors' loop fp32"] = authors_loop_attack(task.model)
    return variants


def batch_sweep(task: Task, device: torch.device, sizes: list[int]) -> list[dict[str, Any]]:
    """Images/s of the default path by batch size (each size warmed up, then timed twice)."""
    fast_model = prepare_model(copy.deepcopy(task.model), device)
    attack = wmrbench_attack(fast_model, "bf16" if device.type == "cuda" else "fp32")
    rows = []
    for size in sizes:
        sized = Task(task.arch, task.model, task.x, task.y, size)
        timed(lambda: over_batches(sized, attack, sized.spans[:1] + sized.spans[-1:]), device)
        seconds = min(timed(lambda: over_batches(sized, attack), device)[0] for _ in range(2))
        rows.append({"model": task.arch, "batch": size, "images": len(task.y), "seconds": seconds,
                     "images/s": len(task.y) / seconds})
    return rows


def run_model(arch: str, n: int, batch_size: int, check_n: int, device: torch.device, repeats: int,
              compile_model: bool, only: list[str] | None = None) -> dict[str, Any]:
    print(f"{arch}: {n} {DATA[arch]} images, batch {batch_size}, PGD-{STEPS} and APGD-{STEPS}", flush=True)
    task = make_task(arch, n, batch_size, device)
    variants = variants_for(task, device, compile_model)
    if only:
        variants = {k: v for k, v in variants.items() if any(k.startswith(prefix) for prefix in only)}
    edge = task.spans[:1] + task.spans[-1:]  # warm-up: both batch shapes, so no capture is timed
    runs = {name: (lambda a=a: over_batches(task, a)) for name, a in variants.items()}
    warm = {name: (lambda a=a: over_batches(task, a, edge)) for name, a in variants.items()}
    times, outputs = alternate(runs, repeats, device, warm)
    peer = median(times[TORCHATTACKS]) if TORCHATTACKS in times else None
    apgd_peer = median(times[PYAUTOATTACK]) if PYAUTOATTACK in times else None
    rows = []
    for name, seconds in times.items():
        t = median(seconds)
        rows.append({
            "model": arch, "variant": name, "batch": batch_size, "images": n, "median s": t,
            "images/s": n / t, "speed-up vs torchattacks": (peer / t) if peer else None,
            "speed-up vs APGD-CE": (apgd_peer / t) if apgd_peer else None,
            "robust acc %": 100 * outputs[name].item() / n,
        })
    checks = []
    if TORCHATTACKS in variants:
        dtypes = [torch.float32, torch.float64]
        checks = [same_points(task, check_n, dtype) for dtype in dtypes]
    apgd_checks = [same_apgd_points(task, check_n)] if PYAUTOATTACK in variants else []
    return {"rows": rows, "times": times, "checks": checks, "apgd_checks": apgd_checks}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("attack", __doc__.splitlines()[0])
    p.add_argument("--arch", action="append", choices=sorted(SHAPES), help="model(s) (default both)")
    p.add_argument("--n", type=int, default=None, help="images per model (default: 10,000 on CUDA; quick 4 / 32 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="batch for every variant (default 1000 on CUDA)")
    p.add_argument("--compile", action="store_true", help="also time wmrbench with torch.compile (CUDA)")
    p.add_argument("--only", default=None, help="comma-separated variant-name prefixes to run (default all)")
    p.add_argument("--batch-sweep", default=None, help="comma-separated batch sizes to time the default path at, or none (CUDA default 256,512,1000,2000)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    repeats = args.repeats or 5
    cuda = device.type == "cuda"
    sizes = {  # (n, batch, exactness-check n) per arch
        "resnet18": (10000, 1000, 512) if cuda else ((4, 4, 4) if args.quick else (32, 32, 16)),
        "smallcnn": (10000, 1000, 512) if cuda else ((32, 32, 32) if args.quick else (512, 256, 128)),
    }
    results: dict[str, Any] = {"rows": [], "checks": [], "apgd_checks": [], "times": {}, "batch_sweep": []}
    for arch in args.arch or ["resnet18", "smallcnn"]:
        n, batch, check_n = sizes[arch]
        n, batch = args.n or n, args.batch_size or batch
        only = [v.strip() for v in args.only.split(",")] if args.only else None
        out = run_model(arch, n, batch, min(check_n, n), device, repeats, args.compile, only)
        results["rows"] += out["rows"]
        results["checks"] += out["checks"]
        results["apgd_checks"] += out["apgd_checks"]
        results["times"][arch] = out["times"]
        sweep = args.batch_sweep if args.batch_sweep is not None else ("256,512,1000,2000" if cuda and not args.quick else "")
        if sweep and sweep != "none" and arch == "resnet18":
            results["batch_sweep"] += batch_sweep(make_task(arch, n, batch, device), device, [int(s) for s in sweep.split(",")])
    env = environment(device)
    tables = [print_table(results["rows"], f"PGD-{STEPS} and APGD-{STEPS} on {env['device']} (median of {repeats} alternating runs)")]
    if results["checks"]:
        tables.append(print_table(results["checks"], "Same start (zero), same points? wmrbench vs torchattacks"))
    if results["apgd_checks"]:
        tables.append(print_table(results["apgd_checks"], "Same start, same points? wmrbench APGD (alpha 0) vs pyautoattack APGD-CE"))
    if results["batch_sweep"]:
        tables.append(print_table(results["batch_sweep"], "wmrbench default path by batch size"))
    payload = {
        "benchmark": "attack", "command": command_line(), "environment": env,
        "settings": {"eps": EPS, "step_size": STEP, "steps": STEPS, "repeats": repeats, "quick": args.quick,
                     "start": "uniform (exactness check: zero)", "loss": "ce",
                     "apgd": "wmrbench attacks.apgd, CE, alpha 0 and 2, STEPS iterations, step size its own (2 eps, halved)"},
        **results, "tables": tables,
    }
    write_result(args, "attack", payload)
    return payload


if __name__ == "__main__":
    main()
