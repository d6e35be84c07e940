"""Tables (pandas DataFrames from :mod:`.tables`) -> terminal (rich), Markdown, CSV, LaTeX.

Text is left-aligned and numbers right-aligned in every format; accuracies have two decimals, as
the paper prints them; CSV gives them and their intervals to six decimals. The output depends on the frame alone, so a
rerun writes the same bytes.
"""

from __future__ import annotations

import io
import math
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from wmrbench.report.tables import HI, LO, METRIC_COLUMNS, NUMBER_COLUMNS, PAPER_SUFFIX


class TableFormat(str, Enum):
    MD = "md"
    CSV = "csv"
    LATEX = "latex"
    ROBUSTBENCH = "robustbench"  # not a table: one RobustBench model_info JSON per result

    @property
    def suffix(self) -> str:
        return {"md": ".md", "csv": ".csv", "latex": ".tex", "robustbench": ".json"}[self.value]


class CiStyle(str, Enum):
    """How a metric's 95% interval is shown beside it (CSV always keeps METRIC_lo / METRIC_hi
    columns, but for ``none``)."""

    PM = "pm"  # 53.30 ± 2.4: half the interval's width, one decimal (the interval need not be symmetric)
    INTERVAL = "interval"  # 53.30 [50.90, 55.70]: the percentile interval itself
    NONE = "none"  # the point estimate alone


def _interval_text(lo: Any, hi: Any, ci: CiStyle) -> str:
    if ci is CiStyle.NONE or _missing(lo) or _missing(hi):
        return ""
    if ci is CiStyle.PM:
        return f" ± {(float(hi) - float(lo)) / 2:.1f}"
    return f" [{float(lo):.2f}, {float(hi):.2f}]"


def _interval_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if (c.endswith(LO) and c[: -len(LO)] in frame.columns)
            or (c.endswith(HI) and c[: -len(HI)] in frame.columns)]


def _cells(frame: pd.DataFrame, ci: CiStyle) -> tuple[list[str], list[list[str]]]:
    """The columns shown and each row's cells as text, intervals folded into their metric."""
    hidden = set(_interval_columns(frame))
    shown = [c for c in frame.columns if c not in hidden]
    rows = []
    for record in frame.to_dict("records"):
        rows.append([_paper_cell(c, record[c]) + (_interval_text(record.get(c + LO), record.get(c + HI), ci)
                                                  if not _missing(record[c]) else "") for c in shown])
    return shown, rows


def print_table(frame: pd.DataFrame, title: str, console: Console | None = None, ci: CiStyle = CiStyle.PM) -> None:
    """The frame as a rich table on the terminal (or on ``console``)."""
    columns, cells = _cells(frame, ci)
    frame = frame[columns]
    widths = [max([len(str(c))] + [len(r[i]) for r in cells]) for i, c in enumerate(frame.columns)]
    # Light rules and one space of padding: the intervals beside every number need the room.
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column, width in zip(frame.columns, widths):
        table.add_column(column, justify="right" if _numeric(frame, column) else "left",
                         no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    # A table is never squeezed to the terminal: truncated names and numbers mislead.
    console = console or Console(width=max(80, sum(widths) + 2 * len(widths) + 2))
    console.print(table)
    for line in legend(columns, cells, ci):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def legend(columns: list[str], cells: list[list[str]], ci: CiStyle = CiStyle.PM) -> list[str]:
    """At most two lines under a terminal table: what its interval notation and its weighted
    metrics mean, for the ones the table shows."""
    text = " ".join(columns) + " " + " ".join(" ".join(row) for row in cells)
    weighted = [m for m in ("A_sa", "A_tr", "A_wc") if m in columns or any(c.startswith(m) for c in text.split())]
    first = []
    if "±" in text:
        first.append("± half the 95% interval (bootstrap over test examples)")
    elif ci is CiStyle.INTERVAL and "[" in text:
        first.append("[low, high] the 95% interval (bootstrap over test examples)")
    if weighted:
        first.append(f"{', '.join(weighted)} weigh examples by exp(-alpha_test * margin):")
    second = ", ".join(part for key, part in (
        ("A_sa", "A_sa at the uniform attack's points"), ("A_tr", "A_tr under the weighted attack"),
        ("A_wc", "A_wc at the worst point found (wmrbench's own)"),
    ) if key in weighted)
    return [line for line in (". ".join(first), second) if line]


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    """Right-align numbers (accuracies and alphas always, even when a column is all missing)."""
    return column.startswith(METRIC_COLUMNS + NUMBER_COLUMNS) or pd.api.types.is_numeric_dtype(frame[column])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


ALPHA_COLUMNS = ("alpha_train", "alpha_test")


def _paper_cell(column: str, value: Any) -> str:
    """Accuracies with two decimals, as the paper prints them, in every format but CSV; other
    numbers (alphas, eps, step sizes) as given, never in exponent form (1000000, not 1e+06)."""
    if _missing(value):
        return "-"
    if column.startswith(METRIC_COLUMNS):
        return f"{float(value):.2f}"
    if column.startswith(ALPHA_COLUMNS) and isinstance(value, float):
        # Rows of distinct alphas must not print alike (0.1 and 0.10000000001): every digit that
        # tells the value apart, positional (1e-07 -> 0.0000001), 1.5 -> 1.5 as before.
        return np.format_float_positional(value, trim="-")
    if isinstance(value, float):
        text = f"{value:.6g}"  # 2/255 -> 0.00784314; 1.5 -> 1.5
        return np.format_float_positional(value, trim="-") if "e" in text else text
    return str(value)


def to_markdown(frame: pd.DataFrame, ci: CiStyle = CiStyle.PM) -> str:
    from tabulate import tabulate

    columns, rows = _cells(frame, ci)
    frame = frame[columns]
    align = ["right" if _numeric(frame, c) else "left" for c in frame.columns]
    return tabulate(rows, headers=list(frame.columns), tablefmt="github", colalign=align, disable_numparse=True) + "\n"


CSV_DECIMALS = 6  # accuracies (points) and their intervals alike: 1e-6 points is far below any interval


def to_csv(frame: pd.DataFrame, ci: CiStyle = CiStyle.PM) -> str:
    """Accuracies and their intervals (METRIC_lo, METRIC_hi; left out with ``none``) to the same
    six decimals; every other column as it is."""
    if ci is CiStyle.NONE:
        frame = frame.drop(columns=_interval_columns(frame))
    frame = frame.copy()
    for column in frame.columns:
        if column.startswith(METRIC_COLUMNS) and pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].round(CSV_DECIMALS)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")  # full precision: CSV is for machines
    return buffer.getvalue()


_LATEX_HEADERS = {
    "alpha_train": r"$\alpha_{\mathrm{train}}$", "alpha_test": r"$\alpha_{\mathrm{test}}$",
    "1/lambda": r"$1/\lambda$", "A_nat": r"$A_{\mathrm{nat}}$", "A_rob": r"$A_{\mathrm{rob}}$",
    "A_sa": r"$A_{\mathrm{sa}}$", "A_tr": r"$A_{\mathrm{tr}}$", "A_wc (wmrbench)": r"$A_{\mathrm{wc}}$ (wmrbench)",
}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_header(column: str) -> str:
    base, paper = (column[: -len(PAPER_SUFFIX)], True) if column.endswith(PAPER_SUFFIX) else (column, False)
    header = _LATEX_HEADERS.get(base, _latex_escape(base))
    return f"{header}{PAPER_SUFFIX}" if paper else header


def to_latex(frame: pd.DataFrame, caption: str = "", ci: CiStyle = CiStyle.PM) -> str:
    """A booktabs ``table`` environment (needs \\usepackage{booktabs})."""
    columns, cells = _cells(frame, ci)
    frame = frame[columns]
    align = "".join("r" if _numeric(frame, c) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_latex_header(c) for c in frame.columns) + r" \\", r"\midrule"]
    for row in cells:
        lines.append(" & ".join(_latex_cell(text) for text in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _latex_cell(text: str) -> str:
    # ± is not in LaTeX's default input encoding everywhere: \pm works in every engine.
    # \ensuremath rather than $...$: a cell's only unescaped specials stay the escapes themselves.
    return _latex_escape(text).replace(" ± ", r" \ensuremath{\pm} ")


def render(frame: pd.DataFrame, fmt: TableFormat, caption: str = "", ci: CiStyle = CiStyle.PM) -> str:
    if fmt is TableFormat.MD:
        return to_markdown(frame, ci)
    if fmt is TableFormat.CSV:
        return to_csv(frame, ci)
    return to_latex(frame, caption, ci)
