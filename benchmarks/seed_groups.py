"""Training seeds of the demo's two methods (digits, TRADES and TRADES+ours), measured as groups.

Reads result folders ``RESULTS/<prefix>-a0-s<seed>`` and ``<prefix>-a2-s<seed>`` (one per training
seed, all on the same test images) and prints, as Markdown (docs/reproduction.md, "Training seeds"):

1. each method's seed spread (sd over seeds), its mean with the two-level 95% interval, and the
   share of one run's variance due to the seed, for A_rob and A_sa / A_tr at alpha 1 and 2;
2. the "+ours" gain as two groups (``wmrbench compare 'a2-s*' 'a0-s*'``): the difference of the
   means, its two-level interval, the paired t over seeds, P(A > B); and each seed's own gain;
3. same-method comparisons: every split of one method's seeds into two groups (2 against 3),
   compared as groups (Welch t over runs), against every pair of its seeds compared by the old
   example-only verdict (the paired interval over test images excludes 0).

    uv run wmrbench train --dataset digits --defense trades --seeds 0,1,2,3,4 --alpha-train 0,2 --run digits-trades
    uv run wmrbench evaluate --checkpoint 'checkpoints/digits-trades-a*-s*/last.pt'
    uv run python benchmarks/seed_groups.py results --prefix digits-trades
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from wmrbench.results.comparison import compare
from wmrbench.results.groups import compare_groups, group_summary, group_verdict, load_group

SHOWN = [("A_rob", None), ("A_sa", "1"), ("A_tr", "1"), ("A_sa", "2"), ("A_tr", "2")]


def label(metric: str, alpha: str | None) -> str:
    return metric if alpha is None else f"{metric}({alpha})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--prefix", default="digits-trades")
    parser.add_argument("--ours", default="a2")
    args = parser.parse_args()
    folders = {m: sorted(args.results.glob(f"{args.prefix}-{m}-s*")) for m in ("a0", args.ours)}
    groups = {m: load_group([str(f) for f in fs], name=f"{args.prefix}-{m}") for m, fs in folders.items()}
    names = {"a0": "TRADES", args.ours: "TRADES+ours"}

    print("### Seed spread per method\n")
    print("| method | seeds | metric | mean | 95% two-level interval | sd over seeds | share of variance due to seeds | per seed |")
    print("| --- | ---: | --- | ---: | --- | ---: | ---: | --- |")
    for m, g in groups.items():
        s = {(x.metric, x.alpha): x for x in group_summary(g).metrics}
        for key in SHOWN:
            x = s[key]
            print(f"| {names[m]} | {len(g.members)} | {label(*key)} | {x.mean:.2f} | [{x.lo:.2f}, {x.hi:.2f}] | "
                  f"{x.sd:.2f} | {x.run_share:.0%} | {', '.join(f'{v:.2f}' for v in x.values)} |")

    print("\n### The '+ours' gain over seeds\n")
    c = compare_groups(groups[args.ours], groups["a0"])
    print("| metric | gain (mean over seeds) | 95% two-level interval | p (paired t over seeds) | P(+ours > TRADES) | "
          "per-seed gains | verdict |")
    print("| --- | ---: | --- | ---: | ---: | --- | --- |")
    by = {(d.metric, d.alpha): d for d in c.differences}
    ours = {(x.metric, x.alpha): x for x in c.a.metrics}
    base = {(x.metric, x.alpha): x for x in c.b.metrics}
    for key in SHOWN:
        d = by[key]
        per_seed = np.array(ours[key].values) - np.array(base[key].values)
        print(f"| {label(*key)} | {d.difference:+.2f} | [{d.lo:+.2f}, {d.hi:+.2f}] | {d.p_value:.3g} | "
              f"{d.improvement:.2f} | {', '.join(f'{v:+.2f}' for v in per_seed)} | {group_verdict(d)} |")

    print("\n### Same method against itself\n")
    for m, g in groups.items():
        members = g.members
        grouped, grouped_n = 0, 0
        # Two groups of at least 2 seeds each (Welch's t needs two runs a side): 4 seeds or more.
        for part in (itertools.combinations(range(len(members)), 2) if len(members) >= 4 else ()):
            rest = [i for i in range(len(members)) if i not in part]
            a = load_group([str(folders[m][i]) for i in part], name="A")
            b = load_group([str(folders[m][i]) for i in rest], name="B")
            for d in compare_groups(a, b).differences:
                grouped_n += 1
                grouped += d.p_value is not None and d.p_value < 0.05
        old, old_n = 0, 0
        for i, j in itertools.combinations(range(len(members)), 2):
            single, _ = compare(folders[m][i], folders[m][j])
            for d in single.differences:
                old_n += 1
                old += d.lo > 0 or d.hi < 0
        split = (f"groups of 2 seeds against the other {len(members) - 2}, Welch t over runs: {grouped} of {grouped_n} "
                 f"metric comparisons significant at 5% ({grouped / grouped_n:.1%})" if grouped_n
                 else "fewer than 4 seeds: no split into two groups of 2 or more")
        print(f"- {names[m]}: {split}; one seed against another by the old example-only interval: {old} of {old_n} "
              f"({old / old_n:.1%}) called significant at 5%")


if __name__ == "__main__":
    main()
