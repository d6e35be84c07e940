"""Results -> pandas DataFrames in the paper's table formats -> terminal, Markdown, CSV, LaTeX."""

from __future__ import annotations

import io
import math
from enum import Enum
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

NON_UNIFORM_COLUMNS = ["Model", "Defense", "alpha_train", "alpha_test", "A_nat", "A_rob", "A_sa", "A_tr"]
# The paper's tables, with the data set and our run name in front (one row per model and setting).
PAPER_NON_UNIFORM_COLUMNS = ["Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_sa", "A_tr"]  # Tables 1-3
PAPER_UNIFORM_COLUMNS = ["Dataset", "Model", "Defense", "1/lambda", "alpha_train", "A_nat", "A_rob"]  # Tables 4-5
METRIC_COLUMNS = ("A_nat", "A_rob", "A_sa", "A_tr")
NUMBER_COLUMNS = ("alpha_train", "alpha_test", "1/lambda")


class TableFormat(str, Enum):
    MD = "md"
    CSV = "csv"
    LATEX = "latex"

    @property
    def suffix(self) -> str:
        return {"md": ".md", "csv": ".csv", "latex": ".tex"}[self.value]


def defense_label(model_info: dict[str, Any]) -> str:
    """'TRADES', 'PGD+ours', ... as the paper names rows; the model's name when not ours."""
    defense = model_info.get("defense")
    if not defense:
        return str(model_info.get("name", "?"))
    alpha = model_info.get("alpha_train") or 0.0
    return f"{str(defense).upper()}{'+ours' if alpha > 0 else ''}"


def _common(summary: dict[str, Any], model: str | None) -> dict[str, Any]:
    info = summary["model"]
    alpha_train = info.get("alpha_train")
    return {
        "Dataset": summary.get("config", {}).get("dataset"),
        "Model": model or summary.get("run", info.get("name")),
        "Defense": defense_label(info),
        "alpha_train": alpha_train if alpha_train else None,  # the paper's baselines show "-"
    }


def non_uniform_rows(summary: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    """Tables 1-3 of the paper: one row per alpha_test."""
    metrics = summary["metrics"]
    rows = []
    for key, a_sa in metrics["A_sa"].items():
        rows.append({
            **_common(summary, model),
            "alpha_test": float(key),
            "A_nat": metrics["A_nat"],
            "A_rob": metrics["A_rob"],
            "A_sa": a_sa,
            "A_tr": metrics["A_tr"].get(key),
        })
    return rows


def uniform_rows(summary: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    """Tables 4-5 of the paper: one row per model; 1/lambda is TRADES' beta."""
    beta = summary["model"].get("beta")
    return [{
        **_common(summary, model),
        "1/lambda": beta,
        "A_nat": summary["metrics"]["A_nat"],
        "A_rob": summary["metrics"]["A_rob"],
    }]


def non_uniform_table(summaries: list[dict[str, Any]], columns: list[str] = NON_UNIFORM_COLUMNS) -> pd.DataFrame:
    rows = [row for s in summaries for row in non_uniform_rows(s)]
    return pd.DataFrame(rows, columns=columns)


def uniform_table(summaries: list[dict[str, Any]], columns: list[str] = PAPER_UNIFORM_COLUMNS) -> pd.DataFrame:
    rows = [row for s in summaries for row in uniform_rows(s)]
    return pd.DataFrame(rows, columns=columns)


def print_table(frame: pd.DataFrame, title: str, console: Console | None = None) -> None:
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(frame.columns)]
    table = Table(title=title)
    for column, width in zip(frame.columns, widths):
        table.add_column(column, justify="right" if _numeric(frame, column) else "left",
                         no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    # A table is never squeezed to the terminal: truncated names and numbers mislead.
    console = console or Console(width=max(80, sum(widths) + 3 * len(widths) + 1))
    console.print(table)


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    """Right-align numbers (accuracies and alphas always, even when a column is all missing)."""
    return column.startswith(METRIC_COLUMNS + NUMBER_COLUMNS) or pd.api.types.is_numeric_dtype(frame[column])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 10 or value == 0 else f"{value:g}"
    return str(value)


def _paper_cell(column: str, value: Any) -> str:
    """Accuracies with two decimals, as the paper prints them; alphas as short as they are."""
    if _missing(value):
        return "-"
    if column.startswith(METRIC_COLUMNS):
        return f"{float(value):.2f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    from tabulate import tabulate

    rows = [[_paper_cell(c, v) for c, v in zip(frame.columns, row)] for row in frame.itertuples(index=False)]
    align = ["right" if _numeric(frame, c) else "left" for c in frame.columns]
    return tabulate(rows, headers=list(frame.columns), tablefmt="github", colalign=align, disable_numparse=True) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")  # full precision: CSV is for machines
    return buffer.getvalue()


_LATEX_HEADERS = {
    "alpha_train": r"$\alpha_{\mathrm{train}}$", "alpha_test": r"$\alpha_{\mathrm{test}}$",
    "1/lambda": r"$1/\lambda$", "A_nat": r"$A_{\mathrm{nat}}$", "A_rob": r"$A_{\mathrm{rob}}$",
    "A_sa": r"$A_{\mathrm{sa}}$", "A_tr": r"$A_{\mathrm{tr}}$",
}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_header(column: str) -> str:
    base, paper = (column[: -len(" (paper)")], True) if column.endswith(" (paper)") else (column, False)
    header = _LATEX_HEADERS.get(base, latex_escape(base))
    return f"{header} (paper)" if paper else header


def to_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``table`` environment (needs \\usepackage{booktabs})."""
    align = "".join("r" if _numeric(frame, c) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_latex_header(c) for c in frame.columns) + r" \\", r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_paper_cell(c, v)) for c, v in zip(frame.columns, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render(frame: pd.DataFrame, fmt: TableFormat, caption: str = "") -> str:
    if fmt is TableFormat.MD:
        return to_markdown(frame)
    if fmt is TableFormat.CSV:
        return to_csv(frame)
    return to_latex(frame, caption)
