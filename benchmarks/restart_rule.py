"""The restart rule's effect on the weighted metrics: the SAME restarts (same keyed starts, one
attack pass) chosen among with the old rule (keep the lowest final margin) and with the new one
(a misclassified point with the lowest margin if any, else the highest-margin point;
docs/definitions.md, section 3).

    python benchmarks/restart_rule.py --n 1000       # real MNIST checkpoint, --protocol paper
    python benchmarks/restart_rule.py --n 1000 --uniform-only \
        --records benchmarks/reference/cpu-quick/restart-rule-1000   # A_rob, A_sa: records and paired intervals

With ``--records DIR`` each rule's per-example records go to DIR/<rule>.csv.gz and the table
gains each metric's difference with its paired 95% interval (``uncertainty.paired``: the same
resampled examples for both rules, 2,000 resamples, seed 0). ``--uniform-only`` leaves out the
weighted attack behind A_tr and A_wc (a quarter of the time): A_rob and A_sa only.

A measurement script, not a test: the old rule exists only here, as the comparison. It follows
the new rule's choices through ``choose_among`` and keeps the old rule's alongside.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, timed, write_result

import pandas as pd
import torch

from wmrbench.attacks import AttackResult, margin, predict
from wmrbench.data import load_split
from wmrbench.results.metrics import compute_metrics
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.core.presets import eval_config
from wmrbench.results.records import alpha_key, tr_columns
from wmrbench.results.uncertainty import paired

from precision import SHARED

ALPHAS = (1.0, 1.5, 2.0)
PGD = importlib.import_module("wmrbench.attacks.pgd")  # the module (the package exports the function)
NEW_RULE = PGD.choose_among


def old_rule(best: AttackResult, new: AttackResult) -> AttackResult:
    """wmrbench before the fix: the lowest final margin wins, correct or not."""
    better = new.margin < best.margin
    expand = better.view(-1, *[1] * (new.x_adv.dim() - 1))
    return AttackResult(torch.where(expand, new.x_adv, best.x_adv), torch.where(better[:, None], new.logits, best.logits),
                        torch.where(better, new.margin, best.margin), torch.where(better, new.restart, best.restart))


def attack_both_rules(*args: Any, **kwargs: Any) -> tuple[AttackResult, AttackResult]:
    """One pgd call; (new-rule result, old-rule result) over the same restarts."""
    shadow: dict[int, AttackResult] = {}

    def both(best: AttackResult, new: AttackResult, y: torch.Tensor) -> AttackResult:
        chosen = NEW_RULE(best, new, y)
        shadow[id(chosen)] = old_rule(shadow.get(id(best), best), new)
        return chosen

    PGD.choose_among = both
    try:
        result = PGD.pgd(*args, **kwargs)
    finally:
        PGD.choose_among = NEW_RULE
    return result, shadow.get(id(result), result)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("restart_rule", __doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="first N MNIST test images (default 1000)")
    p.add_argument("--records", default=None, help="folder for each rule's records (.csv.gz); adds paired intervals")
    p.add_argument("--uniform-only", action="store_true", help="A_rob and A_sa only (no weighted attack)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model = load_model_from_checkpoint(SHARED / "models" / "trades_mnist_smallcnn.pt", "smallcnn", 10, 1).eval().to(device)
    data = load_split("mnist", str(SHARED / "mnist"), train=False).subset(args.n)
    kept: dict[str, pd.DataFrame] = {}
    # The rule under comparison is wmrbench's weighted one (--protocol paper defaults to the
    # authors' max-ce now; `wmrbench evaluate --restart-rule max-ce` records both in one run).
    cfg = eval_config("mnist", "rule", "paper", alpha_test=ALPHAS, restart_rule="weighted")
    index = torch.arange(len(data), device=device)
    x, y = data.images(torch.arange(len(data))).to(device), data.y.to(device)

    def run() -> dict[str, dict[str, float]]:
        clean_logits = predict(model, x)
        rob = attack_both_rules(model, x, y, cfg.attack, index=index, seed=cfg.seed)
        print(f"  uniform attack done ({len(y)} images, 10 restarts)", flush=True)
        k = 0 if args.uniform_only else len(ALPHAS)
        tr: tuple[AttackResult | None, AttackResult | None] = (None, None)
        if k:
            alpha = torch.tensor(ALPHAS, device=device).repeat_interleave(len(y))
            tr = attack_both_rules(model, x.repeat(k, 1, 1, 1), y.repeat(k), cfg.attack, alpha=alpha,
                                   index=index.repeat(k), seed=cfg.seed)
        out = {}
        for name, r, t in (("new rule", rob[0], tr[0]), ("old rule (lowest margin)", rob[1], tr[1])):
            # The records wmrbench would write for these points: every metric (A_wc included)
            # comes from metrics.compute_metrics, as in `wmrbench evaluate`.
            records = {"index": index.cpu().numpy(), "label": y.cpu().numpy(),
                       "clean_correct": (clean_logits.argmax(1) == y).cpu().numpy(),
                       "clean_margin": margin(clean_logits, y).cpu().numpy(),
                       "pgd_correct": (r.logits.argmax(1) == y).cpu().numpy(), "pgd_margin": r.margin.cpu().numpy()}
            if t is not None:
                tr_correct = (t.logits.argmax(1) == y.repeat(k)).view(k, -1).cpu().numpy()
                tr_margin = t.margin.view(k, -1).cpu().numpy()
                for j, a in enumerate(ALPHAS):
                    correct_col, margin_col = tr_columns(a)
                    records[correct_col], records[margin_col] = tr_correct[j], tr_margin[j]
            kept[name] = pd.DataFrame(records)
            m = compute_metrics(kept[name], list(ALPHAS))
            row = {"A_nat": m.A_nat, "A_rob": m.A_rob}
            for table in ("A_sa",) if t is None else ("A_sa", "A_tr", "A_wc"):
                row.update({f"{table}({a:g})": getattr(m, table)[alpha_key(a)] for a in ALPHAS})
            out[name] = row
        return out

    seconds, results = timed(run, device)
    rows = [{"rule": name, **{k: round(v, 2) for k, v in row.items()}} for name, row in results.items()]
    if args.records:
        folder = Path(args.records)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in kept.items():
            path = folder / (name.split(" ")[0] + "-rule.csv.gz")
            tmp = path.with_name(path.name + ".tmp")
            frame.to_csv(tmp, index=False, float_format="%.8g", compression="gzip")
            tmp.replace(path)
        new, old = kept.values()
        diff: dict[str, Any] = {"rule": "old - new [95% paired interval]"}
        for d in paired(old, new, list(ALPHAS)):
            if args.uniform_only and d.metric == "A_wc":  # without the weighted attack it is not A_wc
                continue
            diff[d.label] = f"{d.difference:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}]"
        rows.append(diff)
    title = (f"MNIST TRADES SmallCNN, first {args.n} test images, --protocol paper (PGD-40 step 0.01 eps 0.3, "
             f"10 fresh restarts, fp32), one pass: {seconds:.0f} s")
    table = print_table(rows, title)
    payload = {"command": command_line(), "environment": environment(device), "results": rows, "table": table}
    write_result(args, "restart_rule", payload)
    return payload


if __name__ == "__main__":
    main()
