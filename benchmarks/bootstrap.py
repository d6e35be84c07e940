"""The bootstrap's cost (wmrbench.results.uncertainty): intervals for every metric of a real result, as
a ratio to the time the evaluation (its attacks) took on the same records; and the issue's size,
10,000 examples x 7 alphas x 2,000 resamples, on one core.

    OMP_NUM_THREADS=1 python benchmarks/bootstrap.py --result /tmp/stats-eval/pgd1000

--result is a folder `wmrbench evaluate` wrote (records.csv and summary.json; its ``seconds`` is
the evaluation's wall time: the unweighted attack and one weighted attack per alpha_test). The
bootstrap runs alternately with the paired comparison; each time is the median of --repeats.
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import alternate, command_line, environment, median, parser, print_table, write_result

import numpy as np
import pandas as pd
import torch

from wmrbench.results.records import read_records
from wmrbench.results.uncertainty import paired, uncertainty

SYNTHETIC_ALPHAS = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """Records shaped like a robust model's (random margins; speed does not depend on values)."""
    rng = np.random.default_rng(seed)
    margin = np.clip(rng.normal(0.7, 0.35, n), -1, 1)
    columns = {"index": np.arange(n), "label": rng.integers(0, 10, n), "clean_correct": rng.random(n) < 0.99,
               "clean_margin": rng.uniform(-1, 1, n), "pgd_correct": margin > 0, "pgd_margin": margin}
    for alpha in SYNTHETIC_ALPHAS:
        weighted = margin - rng.uniform(0, 0.1, n)
        columns[f"tr_correct@{alpha:g}"], columns[f"tr_margin@{alpha:g}"] = weighted > 0, weighted
    return pd.DataFrame(columns)


def main() -> None:
    p = parser("bootstrap", __doc__.splitlines()[0])
    p.add_argument("--result", default=None, help="a result folder (records.csv + summary.json) to time against")
    p.add_argument("--n", type=int, default=10_000, help="synthetic examples (default 10,000)")
    args = p.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    cpu = torch.device("cpu")
    rows, payload = [], {"command": command_line(), "environment": environment(cpu), "threads": torch.get_num_threads()}
    records = synthetic(args.n)
    times, _ = alternate({"intervals": lambda: uncertainty(records), "paired": lambda: paired(records, records)}, repeats, cpu)
    payload["synthetic"] = {"examples": args.n, "alphas": len(SYNTHETIC_ALPHAS), "resamples": 2000,
                            "seconds_intervals": median(times["intervals"]), "seconds_paired": median(times["paired"])}
    rows.append({"records": f"synthetic, {args.n} examples x {len(SYNTHETIC_ALPHAS)} alphas", "intervals (s)": median(times["intervals"]),
                 "paired compare (s)": median(times["paired"]), "evaluation (s)": None, "bootstrap / evaluation": None})
    if args.result:
        folder = Path(args.result)
        real = read_records(folder / "records.csv")
        summary = json.loads((folder / "summary.json").read_text())
        times, _ = alternate({"intervals": lambda: uncertainty(real), "paired": lambda: paired(real, real)}, repeats, cpu)
        seconds = float(summary["seconds"])
        ratio = median(times["intervals"]) / seconds
        payload["result"] = {
            "folder": str(folder), "examples": len(real), "alpha_test": summary["config"]["alpha_test"],
            "attack": summary["config"]["attack"], "evaluation_seconds": seconds,
            "seconds_intervals": median(times["intervals"]), "seconds_paired": median(times["paired"]),
            "bootstrap_over_evaluation": ratio,
        }
        rows.append({"records": f"{folder.name}: {len(real)} real MNIST examples", "intervals (s)": median(times["intervals"]),
                     "paired compare (s)": median(times["paired"]), "evaluation (s)": seconds, "bootstrap / evaluation": ratio})
    print_table(rows, "bootstrap (2,000 resamples, 95% percentile intervals for every metric)")
    if args.result:
        print(f"the bootstrap costs {payload['result']['bootstrap_over_evaluation']:.2e} of the evaluation's own time "
              f"(1 in {1 / payload['result']['bootstrap_over_evaluation']:,.0f})")
    write_result(args, "bootstrap", payload)


if __name__ == "__main__":
    main()
