"""How many examples are enough: A_rob and A_sa's 95% intervals and n_eff on the first 500,
1,000 and N MNIST test images, measured from ONE run of evaluate's uniform attack, records kept.

    OMP_NUM_THREADS=1 python benchmarks/sample_size.py --n 10000 --device cpu \
        --records benchmarks/reference/cpu-quick/pgd40-mnist10000-records.csv.gz

The attack is `wmrbench evaluate`'s for A_rob and A_sa (PGD-40 step 0.01 at eps 0.3, 1 restart,
fp32, keyed starts on the example indices, seed 0), on the public TRADES SmallCNN: the records
of the first K images equal a K-image `evaluate` run's `index`, `label`, `clean_*` and `pgd_*`
columns. The weighted attack behind A_tr is left out (it would take four times as long and the
table is about A_sa). A killed run goes on from the batches it saved in RECORDS.partial.npz;
``--finish`` writes the records and the table of those batches alone (the seconds are then not
the attack's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import command_line, environment, parser, print_table, resolve_device, timed, write_result

import numpy as np
import pandas as pd
import torch

from wmrbench import attacks
from wmrbench.data import load_split
from wmrbench.evaluation.scorers import _attack_options
from wmrbench.models.checkpoint import load_model_from_checkpoint
from wmrbench.core.presets import eval_config
from wmrbench.results.uncertainty import uncertainty

from precision import SHARED

ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)
COLUMNS = ("index", "label", "clean_correct", "clean_margin", "pgd_correct", "pgd_margin")
BATCH = 250


def attack_records(n: int, device: torch.device, partial: Path, finish: bool = False) -> pd.DataFrame:
    """Per-example records of the clean and the uniform-attack points, batch by batch, each
    finished batch saved to ``partial`` (so a killed run loses one batch at most). ``finish``:
    attack nothing more; the records are the batches saved so far."""
    model = load_model_from_checkpoint(SHARED / "models" / "trades_mnist_smallcnn.pt", "smallcnn", 10, 1).eval().to(device)
    data = load_split("mnist", str(SHARED / "mnist"), train=False).subset(n)
    cfg = eval_config("mnist", "sample-size", precision="fp32")
    name, options = _attack_options(cfg, weighted=False)
    done: dict[str, np.ndarray] = dict(np.load(partial)) if partial.exists() else {c: np.zeros(0) for c in COLUMNS}
    start = len(done["index"])
    for first in range(start, start if finish else n, BATCH):
        index = torch.arange(first, min(first + BATCH, n))
        x, y = data.images(index).to(device), data.y[index].to(device)
        clean = attacks.predict(model, x, cfg.precision)
        rob = attacks.get_attack(name).run(model, x, y, cfg.attack, index=index.to(device), seed=cfg.seed,
                                           precision=cfg.precision, **options)
        batch = {"index": index, "label": y, "clean_correct": clean.argmax(1) == y,
                 "clean_margin": attacks.margin(clean, y), "pgd_correct": rob.logits.argmax(1) == y,
                 "pgd_margin": attacks.margin(rob.logits, y)}
        for column in COLUMNS:
            done[column] = np.concatenate([done[column], batch[column].cpu().numpy()])
        tmp = partial.with_suffix(".tmp.npz")
        np.savez(tmp, **done)
        tmp.replace(partial)
        print(f"  {len(done['index'])}/{n} images, A_rob so far {100 * done['pgd_correct'].mean():.2f}", flush=True)
    frame = pd.DataFrame({c: done[c] for c in COLUMNS})
    for column in ("index", "label"):
        frame[column] = frame[column].astype(np.int64)
    for column in ("clean_correct", "pgd_correct"):
        frame[column] = frame[column].astype(bool)
    return frame


def rows_for(records: pd.DataFrame) -> list[dict[str, Any]]:
    unc = uncertainty(records, list(ALPHAS))
    lo, hi = unc.intervals["A_rob"]
    rows = [{"n": len(records), "alpha_test": "0 (= A_rob)", "value": round(100 * records["pgd_correct"].mean(), 2),
             "n_eff": len(records), "interval": f"{lo:.2f} - {hi:.2f}", "width": round(hi - lo, 1)}]
    for alpha in ALPHAS:
        key = f"{alpha:g}"
        lo, hi = unc.intervals["A_sa"][key]
        s = np.exp(-alpha * (records["pgd_margin"] - records["pgd_margin"].min()))
        value = 100 * float((s * records["pgd_correct"]).sum() / s.sum())
        rows.append({"n": len(records), "alpha_test": key, "value": round(value, 2), "n_eff": round(unc.n_eff["A_sa"][key]),
                     "interval": f"{lo:.2f} - {hi:.2f}", "width": round(hi - lo, 1)})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser("sample_size", __doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="first N MNIST test images (default 10000)")
    p.add_argument("--records", required=True, help="where the per-example records go (.csv.gz)")
    p.add_argument("--finish", action="store_true",
                   help="attack no more: write the records and table of the batches a cut-short run saved")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    records_path = Path(args.records)
    partial = records_path.with_name(records_path.name + ".partial.npz")
    seconds, records = timed(lambda: attack_records(100 if args.quick else args.n, device, partial, args.finish), device)
    tmp = records_path.with_name(records_path.name + ".tmp")
    records.to_csv(tmp, index=False, float_format="%.8g", compression="gzip")
    tmp.replace(records_path)
    if len(records) == (100 if args.quick else args.n):
        partial.unlink(missing_ok=True)  # a finished run; a --finish of a cut-short one keeps it to go on from
    rows = [row for k in (500, 1000, len(records)) if k <= len(records) for row in rows_for(records.iloc[:k])]
    title = (f"MNIST TRADES SmallCNN, first {len(records)} test images, PGD-40 step 0.01 eps 0.3, 1 restart, fp32, "
             f"seed 0 ({seconds:.0f} s; intervals: percentile bootstrap, 2,000 resamples, seed 0)")
    table = print_table(rows, title)
    payload = {"command": command_line(), "environment": environment(device), "records": str(records_path),
               "results": rows, "table": table}
    write_result(args, "sample_size", payload)
    return payload


if __name__ == "__main__":
    main()
