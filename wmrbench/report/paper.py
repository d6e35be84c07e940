"""The paper's numbers (Tables 1-5), and our tables with them beside ours."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pandas as pd

from wmrbench.core.config import DatasetName
from wmrbench.core.presets import PAPER_PROTOCOLS, PAPER_RESTART_RULE
from wmrbench.report.tables import METRIC_COLUMNS, PAPER_SUFFIX, TableKind, eps_text

PAPER_TABLES = {TableKind.NON_UNIFORM: (1, 2, 3), TableKind.UNIFORM: (4, 5)}


def paper_tables() -> pd.DataFrame:
    """The paper's numbers (Tables 1-5), shipped with the package as resources/paper_tables.csv."""
    with resources.files("wmrbench").joinpath("resources/paper_tables.csv").open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)


def _same(a: Any, b: Any) -> bool:
    """Equal alphas, where a missing value (the baseline's '-') equals only a missing value."""
    a_missing = a is None or (isinstance(a, float) and pd.isna(a))
    b_missing = b is None or (isinstance(b, float) and pd.isna(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    return abs(float(a) - float(b)) < 1e-9


def _paper_row(row: dict[str, Any], paper: pd.DataFrame, kind: TableKind) -> Any:
    """The paper's row with our row's data set, defense and alphas (the first, if several)."""
    for ref in paper.itertuples(index=False):
        if (ref.dataset == row["Dataset"] and ref.defense == row["Defense"]
                and _same(ref.alpha_train, row["alpha_train"])
                and (kind is TableKind.UNIFORM or _same(ref.alpha_test, row["alpha_test"]))):
            return ref
    return None


PROTOCOL_COLUMN = "vs paper's protocol"
INSIDE_COLUMN = "paper in our 95% CI"


def _inside(out: pd.DataFrame, metrics: list[str]) -> list[str | None]:
    """Per row, for each metric with a paper number and our interval, whether the paper's number
    lies inside our interval: 'A_rob yes, A_sa no'. The interval covers only the sampling of our
    test examples: a 'no' says the difference is more than that sampling explains."""
    texts: list[str | None] = []
    for record in out.to_dict("records"):
        parts = []
        for m in metrics:
            paper, lo, hi = record.get(m + PAPER_SUFFIX), record.get(m + "_lo"), record.get(m + "_hi")
            if any(v is None or pd.isna(v) for v in (paper, lo, hi)):
                continue
            parts.append(f"{m} {'yes' if lo <= paper <= hi else 'no'}")
        texts.append(", ".join(parts) or None)
    return texts


def protocol_differences(row: dict[str, Any]) -> str:
    """'same', or what differs between the row's evaluation and the paper's for its data set.

    A number is comparable with the paper's only when it was measured the same way: the same
    norm, eps, steps, step size, restarts and choice among them (the highest cross-entropy), on
    the full test set.
    """
    dataset = DatasetName(row["Dataset"])
    if dataset not in PAPER_PROTOCOLS:
        return "not in the paper"
    paper = PAPER_PROTOCOLS[dataset]
    expected = {"Attack": "PGD", "Norm": "Linf", "eps": eps_text(paper.eps), "Steps": paper.steps, "Step size": paper.step_size,
                "Restarts": paper.restarts, "Restart rule": PAPER_RESTART_RULE.value, "Examples": paper.n_examples}
    if row.get("Restarts") == 1:
        del expected["Restart rule"]  # one restart: nothing to choose, any rule keeps the same point
    differs = [
        f"{column} {_text(row[column])} (paper {_text(value)})" for column, value in expected.items()
        if column in row and not _equal(row[column], value)
    ]
    return "same" if not differs else "differs: " + ", ".join(differs)


def _equal(ours: Any, paper: Any) -> bool:
    if isinstance(paper, float):
        return ours is not None and abs(float(ours) - paper) < 1e-9
    return ours == paper


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_with_paper(frame: pd.DataFrame, kind: TableKind, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each metric gets a '(paper)' column right after it, filled where data set, defense and alpha
    match; the last column says whether the row's protocol is the paper's, and if not, what differs
    (a paper number beside a number measured otherwise is shown, but marked)."""
    paper = paper_tables() if paper is None else paper
    paper = paper[paper["table"].isin(PAPER_TABLES[kind])]
    metrics = [c for c in frame.columns if c in METRIC_COLUMNS]
    matched: dict[str, list[float | None]] = {m: [] for m in metrics}
    tables_col: list[int | None] = []
    protocol_col: list[str | None] = []
    for row in frame.to_dict("records"):
        hit = _paper_row(row, paper, kind)
        tables_col.append(None if hit is None else int(hit.table))
        protocol_col.append(None if hit is None else protocol_differences(row))
        for m in metrics:
            value = None if hit is None else getattr(hit, m)
            matched[m].append(None if value is None or pd.isna(value) else float(value))
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        out[column] = frame[column]
        # The paper's number after ours and our interval (METRIC, METRIC_lo, METRIC_hi, METRIC (paper)).
        base = column[:-3] if column.endswith(("_lo", "_hi")) and column[:-3] in frame.columns else column
        last = base + "_hi" if base + "_hi" in frame.columns else base
        if base in matched and column == last:
            out[base + PAPER_SUFFIX] = pd.Series(matched[base], index=frame.index, dtype="float64")
    out["Paper table"] = pd.Series(tables_col, index=frame.index, dtype="object")
    out[INSIDE_COLUMN] = pd.Series(_inside(out, metrics), index=frame.index, dtype="object")
    out[PROTOCOL_COLUMN] = pd.Series(protocol_col, index=frame.index, dtype="object")
    return out
