"""The instance-reweighting family side by side (``wmrbench reproduce family``): one row per
model and alpha_test, and each reweighted model's difference from its unweighted base.

Pure functions of the summaries; nothing here runs a model. Each model was evaluated once per
attack (PGD, APGD-CE, AutoAttack): A_rob comes from each, A_sa, A_tr and A_wc from the PGD
evaluation (the paper's protocol; A_tr there is weighted PGD).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from wmrbench.results.records import Summary
from wmrbench.report.tables import HI, LO, defense_label

# The attack whose evaluation gives A_sa, A_tr and A_wc (the paper's), and each attack's column.
PRIMARY = "pgd"
ROB_COLUMNS = {"pgd": "A_rob PGD", "apgd-ce": "A_rob APGD-CE", "autoattack": "A_rob AA"}
# Which unweighted model each reweighted one is compared with (by Defense label).
BASE_OF = {"PGD+ours": "PGD", "GAIRAT": "PGD", "MAIL-AT": "PGD",
           "TRADES+ours": "TRADES", "MART": "TRADES", "MAIL-TRADES": "TRADES"}


def family_table(results: Sequence[Mapping[str, Summary]]) -> pd.DataFrame:
    """``results``: per model (in table order), its summary per attack name. Columns: Defense,
    alpha_train, alpha_test, n, A_nat, A_rob per attack, A_sa, A_tr, A_wc (PGD's)."""
    rows = []
    for by_attack in results:
        primary = by_attack[PRIMARY]
        metrics = primary.metrics
        for alpha in metrics.alphas:
            row: dict[str, Any] = {"Defense": defense_label(primary.model),
                                   "alpha_train": primary.model.alpha_train or None, "alpha_test": alpha,
                                   "n": metrics.n_examples, "A_nat": metrics.A_nat}
            for attack, column in ROB_COLUMNS.items():
                if attack in by_attack:
                    row[column] = by_attack[attack].metrics.A_rob
            row["A_sa"] = metrics.A_sa.get(alpha)
            row["A_tr"] = metrics.A_tr.get(alpha)
            row["A_wc"] = metrics.A_wc.get(alpha)
            rows.append(row)
    return pd.DataFrame(rows)


# (Defense label, alpha_test, column) -> the gain's 95% paired interval (wmrbench.results.comparison, on the
# same test images for the model and its base).
GainIntervals = Mapping[tuple[str, float, str], tuple[float, float]]


def gains_table(table: pd.DataFrame, intervals: GainIntervals | None = None) -> pd.DataFrame:
    """Per reweighted model and alpha_test: each metric minus its unweighted base's (points), with
    its paired 95% interval as ``<column> gain_lo`` / ``_hi`` where ``intervals`` has it."""
    metrics = [c for c in table.columns if c.startswith("A_")]
    rows = []
    for _, row in table.iterrows():
        base_label = BASE_OF.get(row["Defense"])
        if base_label is None:
            continue
        base = table[(table["Defense"] == base_label) & (table["alpha_test"] == row["alpha_test"])]
        if base.empty:
            continue
        out: dict[str, Any] = {"Defense": row["Defense"], "vs": base_label, "alpha_test": row["alpha_test"]}
        for name in metrics:
            out[name + " gain"] = row[name] - base.iloc[0][name]
            if intervals is not None and (found := intervals.get((row["Defense"], float(row["alpha_test"]), name))):
                out[name + " gain" + LO], out[name + " gain" + HI] = found
        rows.append(out)
    return pd.DataFrame(rows)
