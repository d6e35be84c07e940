"""The paper's restart rule (max-ce) against wmrbench's (weighted) on the uniform attack of
``wmrbench evaluate --protocol paper --restart-from previous``, from ONE attack run.

    python benchmarks/restart_rule_paper.py --n 200 --device cpu      # the restart rules compared (~8 min, 1 core)

The same engine call as evaluate's A_rob / A_sa attack (one batch, keyed starts on the example
indices, seed 0): its result is the max-ce choice and ``result.weighted_pick`` the weighted
rule's among the same chained restarts. Prints A_rob and A_sa under both rules and the paired
difference with a percentile-bootstrap interval over the examples (the same resampled indices
for both rules, 2,000 resamples, seed 0). The weighted attack for A_tr is left out: it would
quadruple the time and the authors' loop has no counterpart.
"""

from __future__ import annotations

from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, timed, write_result

import numpy as np
import torch

from wmrbench import attacks
from wmrbench.data import load_split
from wmrbench.results.metrics import weighted_accuracy
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.core.presets import eval_config

from precision import SHARED

ALPHAS = (1.0, 1.5, 2.0)
RESAMPLES = 2000


def paired_interval(correct: tuple[np.ndarray, np.ndarray], margin: tuple[np.ndarray, np.ndarray], alpha: float,
                    rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile interval of A_sa(max-ce) - A_sa(weighted), resampling whole examples."""
    index = rng.integers(0, len(correct[0]), size=(RESAMPLES, len(correct[0])))
    diffs = []
    for c, m, sign in ((correct[0], margin[0], 1.0), (correct[1], margin[1], -1.0)):
        s = np.exp(-alpha * (m - m.min()))
        diffs.append(sign * 100.0 * (s[index] * c[index]).sum(1) / s[index].sum(1))
    low, high = np.percentile(diffs[0] + diffs[1], [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("restart_rule_paper", __doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="first N MNIST test images (default 200)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model = load_model_from_checkpoint(SHARED / "models" / "trades_mnist_smallcnn.pt", "smallcnn", 10, 1).eval().to(device)
    data = load_split("mnist", str(SHARED / "mnist"), train=False).subset(40 if args.quick else args.n)
    cfg = eval_config("mnist", "rule", "paper", restart_from="previous")  # restart_rule max-ce
    index = torch.arange(len(data), device=device)
    x, y = data.images(torch.arange(len(data))).to(device), data.y.to(device)
    seconds, result = timed(lambda: attacks.pgd(model, x, y, cfg.attack, index=index, seed=cfg.seed), device)
    picks = {"max-ce (the authors'; --protocol paper)": result, "weighted (wmrbench's default)": result.weighted_pick}
    correct = tuple((r.logits.argmax(1) == y).cpu().numpy().astype(np.float64) for r in picks.values())
    margin = tuple(r.margin.cpu().numpy().astype(np.float64) for r in picks.values())
    rows = []
    for (name, _), c, m in zip(picks.items(), correct, margin):
        rows.append({"rule": name, "A_rob": round(100 * c.mean(), 2),
                     **{f"A_sa({a:g})": round(weighted_accuracy(c, m, a), 2) for a in ALPHAS}})
    rng = np.random.default_rng(0)
    diff = {"rule": "difference [95% paired interval]", "A_rob": round(rows[0]["A_rob"] - rows[1]["A_rob"], 2)}
    for a in ALPHAS:
        low, high = paired_interval(correct, margin, a, rng)
        diff[f"A_sa({a:g})"] = f"{rows[0][f'A_sa({a:g})'] - rows[1][f'A_sa({a:g})']:+.2f} [{low:.2f}, {high:.2f}]"
    rows.append(diff)
    title = (f"MNIST TRADES SmallCNN, first {len(data)} test images, PGD-40 step 0.01 eps 0.3, 10 chained restarts, "
             f"fp32, seed 0: one attack run ({seconds:.0f} s), both rules")
    table = print_table(rows, title)
    payload = {"command": command_line(), "environment": environment(device), "results": rows, "table": table,
               "same_correctness": bool((correct[0] == correct[1]).all())}
    write_result(args, "restart_rule_paper", payload)
    return payload


if __name__ == "__main__":
    main()
