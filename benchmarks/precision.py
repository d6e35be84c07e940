"""Precision policies of the evaluation: seconds, and A_rob / A_sa / A_tr against plain fp32 on
the same keyed starts.

A policy may be the default only when every metric is within 0.1 points of fp32 (docs/definitions.md,
section 6); the table says, per policy, the largest difference and whether it passes.

Models: the real MNIST TRADES SmallCNN on the MNIST test set (the full 10,000 on a GPU), and a
CIFAR-shaped ResNet-18 (random weights, random images in [0, 1]: it measures the arithmetic,
not a defense). The evaluation is wmrbench's own (``evaluation.evaluate_model``): PGD for A_rob
and A_sa, the stacked weighted PGD for A_tr at alpha 1, 1.5, 2.

    python benchmarks/precision.py --quick          # CPU: 200 MNIST images, 16 CIFAR-shaped
    python benchmarks/precision.py                  # GPU: 10,000 + 2,000
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from _common import alternate, command_line, environment, median, parser, print_table, resolve_device, write_result

import torch

from wmrbench.data import ImageSet, load_split
from wmrbench.evaluation import evaluate_model
from wmrbench.results.metrics import compute_metrics
from wmrbench.models import create_model
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.core.presets import eval_config

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
ALPHAS = (1.0, 1.5, 2.0)
TOLERANCE = 0.1  # points: the most a fast policy may move any reported metric
POLICIES = {  # name -> EvalConfig settings
    "fp32": dict(precision="fp32"),
    "fp32 + compile": dict(precision="fp32", compile=True),
    "bf16": dict(precision="bf16"),
    "bf16 + compile": dict(precision="bf16", compile=True),
}


def tasks(device: torch.device, quick: bool) -> dict[str, tuple[torch.nn.Module, ImageSet, Any]]:
    """name -> (model, data, base EvalConfig)."""
    out = {}
    checkpoint = SHARED / "models" / "trades_mnist_smallcnn.pt"
    if checkpoint.is_file():
        model = load_model_from_checkpoint(checkpoint, "smallcnn", 10, 1).eval()
        data = load_split("mnist", str(SHARED / "mnist"), train=False).subset(200 if quick else None)
        out["MNIST SmallCNN (real TRADES checkpoint)"] = (model, data, eval_config(
            "mnist", "bench", alpha_test=ALPHAS, device=str(device), batch_size=200 if quick else 1000))
    else:
        print(f"skipping MNIST: {checkpoint} not found")
    torch.manual_seed(0)
    n = 16 if quick else 2000
    data = ImageSet(torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,)))
    out["CIFAR-shaped ResNet-18 (random)"] = (create_model("resnet18", 10, 3).eval(), data, eval_config(
        "cifar10", "bench", alpha_test=ALPHAS, device=str(device), batch_size=16 if quick else 500))
    return out


def flat(metrics: Any) -> dict[str, float]:
    out = {"A_rob": metrics.A_rob}
    out.update({f"A_sa({k})": v for k, v in metrics.A_sa.items()})
    out.update({f"A_tr({k})": v for k, v in metrics.A_tr.items()})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("precision", __doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="comma-separated policies (default: all)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    repeats = args.repeats or (1 if args.quick else 3)
    chosen = {k: v for k, v in POLICIES.items() if args.only is None or k in args.only.split(",")}
    results = []
    for name, (model, data, base) in tasks(device, args.quick).items():
        print(f"\n{name}: {len(data)} images", flush=True)
        variants = {
            policy: (lambda cfg=dataclasses.replace(base, **settings): evaluate_model(model, data, cfg, show_progress=False))
            for policy, settings in chosen.items()
        }
        times, records = alternate(variants, repeats, device)
        reference = flat(compute_metrics(records["fp32"], list(ALPHAS)))
        for policy in chosen:
            metrics = flat(compute_metrics(records[policy], list(ALPHAS)))
            worst = max(abs(metrics[k] - reference[k]) for k in reference)
            results.append({
                "model": name, "policy": policy, "seconds": median(times[policy]),
                **{k: round(v, 2) for k, v in metrics.items()},
                "max |diff| vs fp32 (points)": round(worst, 3), "within 0.1": worst <= TOLERANCE,
            })
    table = print_table(results, f"precision policies on {device} (median of {repeats})")
    payload = {"command": command_line(), "environment": environment(device), "results": results, "table": table}
    write_result(args, "precision", payload)
    return payload


if __name__ == "__main__":
    main()
