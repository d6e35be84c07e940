"""The paper's numbers (Tables 1-5), and our tables with them beside ours."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pandas as pd

from wmrbench.report.tables import METRIC_COLUMNS, PAPER_SUFFIX, TableKind

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


def compare_with_paper(frame: pd.DataFrame, kind: TableKind, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each metric gets a '(paper)' column right after it, filled where data set, defense and alpha match."""
    paper = paper_tables() if paper is None else paper
    paper = paper[paper["table"].isin(PAPER_TABLES[kind])]
    metrics = [c for c in frame.columns if c in METRIC_COLUMNS]
    matched: dict[str, list[float | None]] = {m: [] for m in metrics}
    tables_col: list[int | None] = []
    for row in frame.to_dict("records"):
        hit = _paper_row(row, paper, kind)
        tables_col.append(None if hit is None else int(hit.table))
        for m in metrics:
            value = None if hit is None else getattr(hit, m)
            matched[m].append(None if value is None or pd.isna(value) else float(value))
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        out[column] = frame[column]
        if column in matched:
            out[column + PAPER_SUFFIX] = pd.Series(matched[column], index=frame.index, dtype="float64")
    out["Paper table"] = pd.Series(tables_col, index=frame.index, dtype="object")
    return out
