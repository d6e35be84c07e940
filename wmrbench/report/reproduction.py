"""A reproduction of one of the paper's tables: wmrbench's numbers beside the paper's, with the
difference per cell, and whether the paper's claim about "+ours" holds on wmrbench's numbers.

The claim (Tables 1-3 and the text around them): at every alpha_test, the "+ours" model scores a
higher A_sa and A_tr than its unweighted baseline, while A_nat and A_rob change little. Each
baseline is paired with the "+ours" model of the same defense.

Pure functions of the summaries (and of the paper's numbers); nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from wmrbench.results.comparison import ONE_RUN
from wmrbench.results.records import Summary, Uncertainty
from wmrbench.report.render import to_csv, to_markdown
from wmrbench.report.paper import INSIDE_COLUMN
from wmrbench.report.tables import PAPER_SUFFIX, defense_label

DIFF_SUFFIX = " diff"  # wmrbench minus the paper, in points
COMPARED = ("A_rob", "A_sa", "A_tr")  # the metrics the paper's Tables 1-3 print
GAIN_SUFFIX = " gain"  # "+ours" minus its baseline, in points
SIGNIFICANT = "holds (significant at 5%)"
NOT_SIGNIFICANT = "holds (not significant)"
DOES_NOT_HOLD = "does not hold"


@dataclass(frozen=True)
class Gain:
    """A "+ours" model minus its baseline on one metric, paired on the same test images
    (:func:`wmrbench.results.uncertainty.paired`): the difference, its 95% interval and p-value."""

    difference: float
    lo: float
    hi: float
    p_value: float
    mcnemar_p: float | None = None
    # Training runs (seeds) per model: with several, the difference is of the means over seeds,
    # the interval two-level (seeds, then images) and ``p_value`` a paired t test over seeds.
    runs: int = 1


# (the "+ours" defense label, alpha_test, metric) -> its paired gain over the baseline
Gains = dict[tuple[str, float, str], Gain]


def gain_verdict(gain: Gain) -> str:
    """'holds (significant at 5%)': higher and, with one training run per model, the paired
    interval excludes 0 (it covers test images only: the table's notes say so), with several
    seeds the test over seeds gives p < 0.05 (``wmrbench compare``'s rule); 'holds (not
    significant)': higher, but not significantly; 'does not hold': not higher."""
    if gain.difference <= 0:
        return DOES_NOT_HOLD
    significant = gain.p_value < 0.05 if gain.runs > 1 else gain.lo > 0
    return SIGNIFICANT if significant else NOT_SIGNIFICANT


def comparison_table(summaries: Sequence[Summary], paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model and alpha_test, in the paper's order (defense, alpha_test, baseline then
    "+ours"): Defense, alpha_train, alpha_test, A_nat, then for A_rob, A_sa and A_tr wmrbench's
    number and, when ``paper`` (the rows of one paper table) is given, the paper's and the
    difference (wmrbench - paper). Cells the paper does not have are missing."""
    rows = []
    for summary in summaries:
        metrics = summary.metrics
        for alpha in metrics.alphas:
            row: dict[str, Any] = {
                "Defense": defense_label(summary.model), "alpha_train": summary.model.alpha_train or None,
                "alpha_test": alpha, "A_nat": metrics.A_nat,
            }
            unc = summary.uncertainty
            row["A_nat_lo"], row["A_nat_hi"] = _interval(unc, "A_nat", None)
            ours = {"A_rob": metrics.A_rob, "A_sa": metrics.A_sa.get(alpha), "A_tr": metrics.A_tr.get(alpha)}
            reference = _paper_row(paper, row) if paper is not None else None
            inside = []
            for name in COMPARED:
                row[name] = ours[name]
                lo, hi = row[name + "_lo"], row[name + "_hi"] = _interval(unc, name, None if name == "A_rob" else alpha)
                if paper is not None:
                    theirs = None if reference is None else _number(reference[name])
                    row[name + PAPER_SUFFIX] = theirs
                    row[name + DIFF_SUFFIX] = None if theirs is None or ours[name] is None else ours[name] - theirs
                    if theirs is not None and lo is not None and hi is not None:
                        inside.append(f"{name} {'yes' if lo <= theirs <= hi else 'no'}")
            if paper is not None:
                # Inside: the gap to the paper is within what the sampling of our test images explains.
                row[INSIDE_COLUMN] = ", ".join(inside) or None
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_defense"] = frame["Defense"].str.replace("+ours", "", regex=False)
    frame["_ours"] = frame["Defense"].str.endswith("+ours")
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["_defense"]))}  # first seen first
    frame["_order"] = frame["_defense"].map(order)
    frame = frame.sort_values(["_order", "alpha_test", "_ours"], kind="mergesort")
    return frame.drop(columns=["_defense", "_ours", "_order"]).reset_index(drop=True)


def _interval(unc: Uncertainty | None, metric: str, alpha: float | None) -> tuple[float | None, float | None]:
    interval = None if unc is None else unc.interval(metric, alpha)
    return interval if interval is not None else (None, None)


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _paper_row(paper: pd.DataFrame, row: dict[str, Any]) -> pd.Series | None:
    """The paper's row with the same defense label, alpha_train ('-' for a baseline) and alpha_test."""
    for _, ref in paper.iterrows():
        same_train = (pd.isna(ref["alpha_train"]) and row["alpha_train"] is None) or (
            row["alpha_train"] is not None and not pd.isna(ref["alpha_train"])
            and abs(float(ref["alpha_train"]) - row["alpha_train"]) < 1e-9
        )
        if ref["defense"] == row["Defense"] and same_train and abs(float(ref["alpha_test"]) - row["alpha_test"]) < 1e-9:
            return ref
    return None


@dataclass(frozen=True)
class Claims:
    """The paper's claim checked on one table's numbers."""

    table: pd.DataFrame  # per defense and alpha_test: the gains of "+ours" over its baseline
    sa_higher: tuple[int, int]  # (pairs where +ours has the higher A_sa, pairs)
    tr_higher: tuple[int, int]
    nat_change: tuple[float, float] | None  # the smallest and largest A_nat change of a pair (points)
    rob_change: tuple[float, float] | None
    sa_significant: int | None = None  # pairs where the paired 95% interval of the A_sa gain excludes 0
    tr_significant: int | None = None
    runs: int = 1  # training runs (seeds) per model behind the gains

    @property
    def significance(self) -> str:
        """What 'significant' means in :meth:`lines`: the paired interval over test images (one
        training run per model), or the paired t test over seeds."""
        return f"paired t over {self.runs} seeds" if self.runs > 1 else "paired 95% interval above 0"

    def lines(self) -> list[str]:
        """What the numbers say, one sentence each."""
        def share(name: str, counts: tuple[int, int], significant: int | None) -> str:
            held, total = counts
            verdict = "yes" if total and held == total else "no"
            sig = ("; no paired interval (records missing)" if significant is None
                   else f"; significant at 5% ({self.significance}) in {significant} of {total}")
            if significant is not None and self.runs == 1:
                sig += f"; {ONE_RUN}"
            return f"'+ours' scores a higher {name} than its baseline at every alpha_test: {verdict} ({held} of {total} pairs{sig})"

        out = [share("A_sa", self.sa_higher, self.sa_significant), share("A_tr", self.tr_higher, self.tr_significant)]
        for name, change in (("A_nat", self.nat_change), ("A_rob", self.rob_change)):
            if change is not None:
                out.append(f"{name} of '+ours' minus its baseline: {change[0]:+.2f} to {change[1]:+.2f} points")
        return out


def check_claims(comparison: pd.DataFrame, gains: Gains | None = None) -> Claims:
    """Pair each "+ours" row with its baseline (same defense and alpha_test) and compare them;
    ``gains`` (paired on the same test images, from the records) add each gain's 95% interval
    and say whether the claim holds significantly."""
    rows = []
    for _, ours in comparison[comparison["Defense"].str.endswith("+ours")].iterrows():
        base = comparison[(comparison["Defense"] == ours["Defense"].replace("+ours", ""))
                          & (comparison["alpha_test"] == ours["alpha_test"])]
        if base.empty:
            continue
        base = base.iloc[0]
        row = {"Defense": ours["Defense"], "alpha_train": ours["alpha_train"], "alpha_test": ours["alpha_test"]}
        verdicts = []
        for name in ("A_nat", "A_rob", "A_sa", "A_tr"):
            row[name + GAIN_SUFFIX] = ours[name] - base[name]
            gain = (gains or {}).get((ours["Defense"], float(ours["alpha_test"]), name))
            if gain is not None:  # the paired interval (folded into the gain's cell when shown)
                row[name + GAIN_SUFFIX + "_lo"], row[name + GAIN_SUFFIX + "_hi"] = gain.lo, gain.hi
                if name in ("A_sa", "A_tr"):
                    row["verdict " + name] = gain_verdict(gain)
                    verdicts.append(row["verdict " + name])
            paper = name + PAPER_SUFFIX
            if paper in comparison and not pd.isna(ours.get(paper)) and not pd.isna(base.get(paper)):
                row[name + GAIN_SUFFIX + PAPER_SUFFIX] = ours[paper] - base[paper]
        higher = row["A_sa gain"] > 0 and row["A_tr gain"] > 0
        if len(verdicts) == 2:  # the claim on both metrics: significant only if both are
            row["holds"] = (DOES_NOT_HOLD if not higher else SIGNIFICANT if all(v == SIGNIFICANT for v in verdicts)
                            else NOT_SIGNIFICANT)
        else:  # no records to pair (a summary without them): the direction alone, said so
            row["holds"] = "yes (no interval)" if higher else "no"
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return Claims(table, (0, 0), (0, 0), None, None)

    def extent(column: str) -> tuple[float, float]:
        return float(table[column].min()), float(table[column].max())

    def significant(name: str) -> int | None:
        column = "verdict " + name
        return int((table[column] == SIGNIFICANT).sum()) if column in table and table[column].notna().all() else None

    return Claims(
        table, (int((table["A_sa gain"] > 0).sum()), len(table)), (int((table["A_tr gain"] > 0).sum()), len(table)),
        extent("A_nat gain"), extent("A_rob gain"), significant("A_sa"), significant("A_tr"),
        max((g.runs for g in (gains or {}).values()), default=1),
    )


@dataclass(frozen=True)
class Reproduction:
    """Everything the reproduction's files hold."""

    title: str
    notes: list[str]  # how it was measured, what differs from the paper, provenance
    comparison: pd.DataFrame
    claims: Claims
    reference: pd.DataFrame | None = None  # the paper's table, shown apart when not comparable
    reference_note: str = ""
    # The same numbers under wmrbench's weighted restart rule (the comparison above chooses among
    # restarts as the paper does, by the highest cross-entropy), from the same attack run.
    weighted_rule: pd.DataFrame | None = None
    weighted_gains: Gains | None = None  # the paired gains under the weighted rule


WEIGHTED_RULE_TITLE = "## Under wmrbench's restart rule (weighted)"
WEIGHTED_RULE_NOTE = (
    "The numbers above choose among restarts as the authors' evaluation does (the highest cross-entropy, "
    "`--restart-rule max-ce`). wmrbench's default keeps, per example, a misclassified restart with the lowest "
    "margin, else the highest margin: the attacker's best for every alpha at once, so A_sa and A_tr are never "
    "higher. Same attack run, same restarts: only the choice differs."
)


def to_markdown_report(rep: Reproduction) -> str:
    parts = [f"# {rep.title}", "", *[f"- {note}" for note in rep.notes], "", "## Numbers", "",
             to_markdown(rep.comparison), "## Does '+ours' beat its baseline?", ""]
    if rep.claims.table.empty:
        parts += ["No pair of a baseline and its '+ours' model to compare.", ""]
    else:
        parts += [to_markdown(rep.claims.table), *[f"- {line}" for line in rep.claims.lines()], ""]
    if rep.weighted_rule is not None:
        parts += [WEIGHTED_RULE_TITLE, "", WEIGHTED_RULE_NOTE, "", to_markdown(rep.weighted_rule),
                  *[f"- {line}" for line in check_claims(rep.weighted_rule, rep.weighted_gains).lines()], ""]
    if rep.reference is not None:
        parts += ["## The paper's table (reference only)", "", rep.reference_note, "", to_markdown(rep.reference)]
    return "\n".join(parts)


def to_csv_report(rep: Reproduction) -> str:
    """The comparison table alone (full precision)."""
    return to_csv(rep.comparison)


def paper_reference(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows in the comparison's columns (for showing apart)."""
    return pd.DataFrame({
        "Defense": paper["defense"], "alpha_train": paper["alpha_train"], "alpha_test": paper["alpha_test"],
        "A_rob": paper["A_rob"], "A_sa": paper["A_sa"], "A_tr": paper["A_tr"],
    }).reset_index(drop=True)
