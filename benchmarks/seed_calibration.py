"""Calibration of the verdicts about training methods, on simulated seed groups (docs/definitions.md).

A simulated method is a fixed test set of 360 examples (each with its own difficulty) and training
runs that each shift every example's margin by the run's own amount (the seed) plus per-example
noise, sized so that over 5 seeds the run-to-run sd is about 1.35 points on A_rob, 2.7 on A_sa(1)
and 4.0 on A_sa(2), near the demo's TRADES over 5 seeds (1.07, 2.80, 3.70; docs/reproduction.md).

Printed: the false-positive rate at 5% of the test over runs (wmrbench.results.groups.run_test) for 3, 5
and 10 seeds per side, of the old example-only verdict (the paired bootstrap interval of one seed
against one seed, wmrbench.results.uncertainty.paired), of the two-level interval alone, and the power of
the test over runs for a real 2-point gain on A_rob and on A_sa(2).

    OMP_NUM_THREADS=1 uv run python benchmarks/seed_calibration.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wmrbench.results.groups import run_test
from wmrbench.results.uncertainty import BootstrapConfig, paired, two_level

N = 360
ALPHAS = (1.0, 2.0)
MU, SD_EXAMPLE_DIFFICULTY, SD_RUN, SD_NOISE = 2.2, 1.5, 0.1, 0.6


def margins(rng: np.random.Generator, sims: int, runs: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(sims, 2 methods, runs, N) margins in (-1, 1); correct where positive."""
    theta = rng.normal(MU, SD_EXAMPLE_DIFFICULTY, size=(sims, 1, 1, N))
    u = rng.normal(0.0, SD_RUN, size=(sims, 2, runs, 1)) + np.array(shift)[None, :, None, None]
    return np.tanh((theta + u + rng.normal(0.0, SD_NOISE, size=(sims, 2, runs, N))) / 2)


def metrics(m: np.ndarray) -> np.ndarray:
    """A_rob, A_sa(1), A_sa(2) of every run: (..., 3)."""
    correct = m > 0
    out = [100 * correct.mean(-1)]
    for alpha in ALPHAS:
        s = np.exp(-alpha * m)
        out.append(100 * (s * correct).sum(-1) / s.sum(-1))
    return np.stack(out, -1)


def records(m: np.ndarray) -> pd.DataFrame:
    n = len(m)
    return pd.DataFrame({"index": np.arange(n), "label": np.zeros(n, dtype=int), "clean_correct": np.ones(n, dtype=bool),
                         "pgd_correct": m > 0, "pgd_margin": m})


def shift_for_gain(gain: float, column: int) -> float:
    """The margin shift that raises a metric by ``gain`` points on average (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        values = metrics(margins(np.random.default_rng(7), 400, 4, (mid, 0.0)))
        got = values[:, 0, :, column].mean() - values[:, 1, :, column].mean()
        lo, hi = (mid, hi) if got < gain else (lo, mid)
    return (lo + hi) / 2


def main() -> None:
    rng = np.random.default_rng(0)
    sd = metrics(margins(rng, 400, 5)).std(axis=2, ddof=1).mean(axis=(0, 1))
    print(f"run-to-run sd over 5 seeds: A_rob {sd[0]:.2f}, A_sa(1) {sd[1]:.2f}, A_sa(2) {sd[2]:.2f}")
    for runs in (3, 5, 10):
        v = metrics(margins(rng, 2000, runs))
        for pair, name in ((True, "paired t"), (False, "Welch t")):
            rate = (run_test(v[:, 0], v[:, 1], pair) < 0.05).mean(axis=0)
            print(f"same method, {runs} seeds each, {name}: false positives at 5% (A_rob, A_sa(1), A_sa(2)) "
                  + ", ".join(f"{100 * r:.1f}%" for r in rate) + " of 2000")
    hits, interval_hits = [], []
    m = margins(rng, 400, 5)
    for s in range(400):
        d = paired(records(m[s, 0, 0]), records(m[s, 1, 0]), list(ALPHAS), BootstrapConfig(resamples=1000, seed=s))
        hits.append([not (x.lo <= 0 <= x.hi) for x in d if x.metric in ("A_rob", "A_sa")])
        if s < 200:
            tl = two_level([[records(x) for x in m[s, 0]], [records(x) for x in m[s, 1]]], list(ALPHAS),
                           BootstrapConfig(resamples=1000, seed=s), paired=True)
            names = [i for i, n in enumerate(tl.names) if n[0] in ("A_rob", "A_sa")]
            diff = tl.means[0][:, names] - tl.means[1][:, names]
            lo, hi = np.percentile(diff, [2.5, 97.5], axis=0)
            interval_hits.append(~((lo <= 0) & (0 <= hi)))
    print("same method, one seed each, the old example-only verdict: false positives at 5% (A_rob, A_sa(1), A_sa(2)) "
          + ", ".join(f"{100 * r:.1f}%" for r in np.mean(hits, axis=0)) + " of 400")
    print("same method, 5 seeds each, the two-level interval excludes 0 (A_rob, A_sa(1), A_sa(2)) "
          + ", ".join(f"{100 * r:.1f}%" for r in np.mean(interval_hits, axis=0)) + " of 200")
    for column, label in ((0, "A_rob"), (2, "A_sa(2)")):
        shift = shift_for_gain(2.0, column)
        for runs in (3, 5, 10):
            v = metrics(margins(rng, 2000, runs, (shift, 0.0)))
            power = (run_test(v[:, 0], v[:, 1], True) < 0.05).mean(axis=0)[column]
            print(f"a real 2-point gain on {label}, {runs} seeds each, paired t: power {100 * power:.1f}% of 2000")


if __name__ == "__main__":
    main()
