"""Results -> pandas DataFrames in the paper's table formats -> terminal, Markdown, CSV, LaTeX."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

NON_UNIFORM_COLUMNS = ["Model", "Defense", "alpha_train", "alpha_test", "A_nat", "A_rob", "A_sa", "A_tr"]


def defense_label(model_info: dict[str, Any]) -> str:
    """'TRADES', 'PGD+ours', ... as the paper names rows; the model's name when not ours."""
    defense = model_info.get("defense")
    if not defense:
        return str(model_info.get("name", "?"))
    alpha = model_info.get("alpha_train") or 0.0
    return f"{str(defense).upper()}{'+ours' if alpha > 0 else ''}"


def non_uniform_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Tables 1-3 of the paper: one row per alpha_test."""
    info, metrics = summary["model"], summary["metrics"]
    alpha_train = info.get("alpha_train")
    rows = []
    for key, a_sa in metrics["A_sa"].items():
        rows.append({
            "Model": summary.get("run", info.get("name")),
            "Defense": defense_label(info),
            "alpha_train": alpha_train if alpha_train else None,
            "alpha_test": float(key),
            "A_nat": metrics["A_nat"],
            "A_rob": metrics["A_rob"],
            "A_sa": a_sa,
            "A_tr": metrics["A_tr"].get(key),
        })
    return rows


def non_uniform_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [row for s in summaries for row in non_uniform_rows(s)]
    return pd.DataFrame(rows, columns=NON_UNIFORM_COLUMNS)


def print_table(frame: pd.DataFrame, title: str, console: Console | None = None) -> None:
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(frame.columns)]
    table = Table(title=title)
    for column, width in zip(frame.columns, widths):
        table.add_column(column, justify="left" if frame[column].dtype == object else "right",
                         no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    # A table is never squeezed to the terminal: truncated names and numbers mislead.
    console = console or Console(width=max(80, sum(widths) + 3 * len(widths) + 1))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 10 or value == 0 else f"{value:g}"
    return str(value)
