"""How far stacked training (``--stack on``) is from the same runs trained alone: ``reproduce table1
--quick``'s four digits runs (PGD a0 / a0.5, TRADES a0 / a2, DigitsNet, the digits preset), trained
taking turns (``fit_sweep``: each bit for bit its solo run), stacked run by run (``impl loop``) and
stacked through vmap (``impl vmap``); then the largest weight difference after the first and the
last epoch, and each model's metrics on the 360 digits test images (the quick protocol, fp32).

    OMP_NUM_THREADS=1 python benchmarks/stack_check.py --epochs 3 --out benchmarks/reference/cpu-quick/stack_check.json
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, write_result

import torch

from wmrbench.evaluation import evaluate_source
from wmrbench.models.source import ModelSource, SourceKind
from wmrbench.studies.reproduce import ReproduceConfig, eval_options, planned_runs
from wmrbench.training.stacked import fit_stacked
from wmrbench.training import fit_sweep


def largest_difference(a: Path, b: Path) -> float:
    x, y = (torch.load(p, weights_only=True)["model"] for p in (a, b))
    return max((x[k].double() - y[k].double()).abs().max().item() for k in x if x[k].is_floating_point())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("stack_check", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    p.add_argument("--restarts", type=int, default=1, help="evaluation restarts (default 1)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    ways = {"alone (fit_sweep, --stack off)": None, "stacked, impl loop": "loop", "stacked, impl vmap": "vmap"}
    rows, checks = [], {}
    with tempfile.TemporaryDirectory() as root:
        folders = {}
        for way, impl in ways.items():
            folder = Path(root) / (impl or "alone")
            cfg = ReproduceConfig(quick=True, epochs=args.epochs, restarts=args.restarts, device=str(device),
                                  checkpoint_dir=str(folder / "checkpoints"), results_dir=str(folder / "results"))
            runs = planned_runs(cfg)
            if impl is None:
                fit_sweep(runs, stop_after_epochs=1, show_progress=False)
                fit_sweep(runs, resume=True, show_progress=False)
            else:
                fit_stacked(runs, impl=impl, stop_after_epochs=1, show_progress=False)
                fit_stacked(runs, impl=impl, resume=True, show_progress=False)
            folders[way] = (folder, runs, cfg)
            for run in runs:
                _, options = eval_options(cfg, run)
                source = ModelSource(SourceKind.CHECKPOINT, checkpoint=str(folder / "checkpoints" / run.run / "last.pt"))
                m = evaluate_source(source, options, run=run.run, show_progress=False).summary.metrics
                rows.append({"training": way, "run": run.run, "A_nat": m.A_nat, "A_rob": m.A_rob,
                             "A_sa(2)": m.A_sa.get("2"), "A_tr(2)": m.A_tr.get("2")})
            print(f"{way}: done", flush=True)
        alone_folder, runs, _ = folders["alone (fit_sweep, --stack off)"]
        for way in list(ways)[1:]:
            folder = folders[way][0]
            checks[way] = {run.run: largest_difference(folder / "checkpoints" / run.run / "last.pt",
                                                       alone_folder / "checkpoints" / run.run / "last.pt") for run in runs}
    base = {r["run"]: r for r in rows if r["training"].startswith("alone")}
    for r in rows:
        r["largest metric difference vs alone (points)"] = max(
            abs(r[k] - base[r["run"]][k]) for k in ("A_nat", "A_rob", "A_sa(2)", "A_tr(2)") if r[k] is not None)
    table = print_table(rows, f"digits, {args.epochs} epochs: metrics of the four runs trained each way")
    print("largest weight difference vs alone after the last epoch:", checks)
    payload = {"benchmark": "stack_check", "command": command_line(), "environment": environment(device),
               "settings": {"epochs": args.epochs, "restarts": args.restarts}, "rows": rows,
               "weight_difference_vs_alone": checks, "tables": [table]}
    write_result(args, "stack_check", payload)
    return payload


if __name__ == "__main__":
    main()
