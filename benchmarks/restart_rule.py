"""The restart rule's effect on the weighted metrics: the same attack (same keyed starts) with
the old rule (keep the lowest final margin) and the new one (a misclassified point with the
lowest margin if any, else the highest-margin point; docs/definitions.md, section 3).

    python benchmarks/restart_rule.py --n 1000       # real MNIST checkpoint, --protocol paper

A measurement script, not a test: the old rule exists only here, as the comparison.
"""

from __future__ import annotations

from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, timed, write_result

import torch

from wmrbench.attacks import objective
from wmrbench.data import load_split
from wmrbench.evaluation import evaluate_model
from wmrbench.metrics import compute_metrics
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.presets import eval_config

from precision import SHARED

ALPHAS = (1.0, 1.5, 2.0)


def old_rule(best: objective.AttackResult, new: objective.AttackResult, y: torch.Tensor) -> objective.AttackResult:
    """wmrbench before the fix: the lowest final margin wins, correct or not."""
    better = new.margin < best.margin
    expand = better.view(-1, *[1] * (new.x_adv.dim() - 1))
    return objective.AttackResult(
        x_adv=torch.where(expand, new.x_adv, best.x_adv), logits=torch.where(better[:, None], new.logits, best.logits),
        margin=torch.where(better, new.margin, best.margin), restart=torch.where(better, new.restart, best.restart),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import importlib

    p = parser("restart_rule", __doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="first N MNIST test images (default 1000)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model = load_model_from_checkpoint(SHARED / "models" / "trades_mnist_smallcnn.pt", "smallcnn", 10, 1).eval()
    data = load_split("mnist", str(SHARED / "mnist"), train=False).subset(args.n)
    cfg = eval_config("mnist", "rule", "paper", alpha_test=ALPHAS, device=str(device), batch_size=500)
    pgd_module = importlib.import_module("wmrbench.attacks.pgd")
    new_rule = pgd_module.choose_among
    rows = []
    for name, rule in (("old rule (lowest margin)", old_rule), ("new rule", new_rule)):
        pgd_module.choose_among = rule
        seconds, records = timed(lambda: evaluate_model(model, data, cfg, show_progress=False), device)
        m = compute_metrics(records, list(ALPHAS))
        rows.append({"rule": name, "A_nat": m.A_nat, "A_rob": m.A_rob,
                     **{f"A_sa({k})": v for k, v in m.A_sa.items()}, **{f"A_tr({k})": v for k, v in m.A_tr.items()},
                     "seconds": seconds})
        print(rows[-1], flush=True)
    pgd_module.choose_among = new_rule
    table = print_table(rows, f"MNIST TRADES SmallCNN, first {args.n} test images, --protocol paper (PGD-40, 10 restarts), fp32")
    payload = {"command": command_line(), "environment": environment(device), "results": rows, "table": table}
    write_result(args, "restart_rule", payload)
    return payload


if __name__ == "__main__":
    main()
