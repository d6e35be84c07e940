"""``leaderboard``: every ``summary.json`` under a folder -> the paper's tables, beside its numbers.

Tables 1-3 (non-uniform attacks): Defense, alpha_train, alpha_test, A_rob, A_sa, A_tr.
Tables 4-5 (uniform attacks): Defense, 1/lambda, alpha_train, A_nat, A_rob.
Each row also names the data set and the model (the result's folder under the results folder).
The output depends on nothing but the summaries: rerunning gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_text
from wmrbench.report import (
    METRIC_COLUMNS, PAPER_NON_UNIFORM_COLUMNS, PAPER_UNIFORM_COLUMNS, TableFormat, non_uniform_rows, render,
    uniform_rows,
)

PAPER_SUFFIX = " (paper)"


class TableKind(str, Enum):
    ALL = "all"
    NON_UNIFORM = "non-uniform"  # Tables 1-3
    UNIFORM = "uniform"  # Tables 4-5


TITLES = {
    TableKind.NON_UNIFORM: "Non-uniform attacks (the paper's Tables 1-3)",
    TableKind.UNIFORM: "Uniform attacks (the paper's Tables 4-5)",
}


@dataclass
class Found:
    name: str  # the result's folder relative to the results folder (its run name when directly under it)
    folder: Path
    summary: dict[str, Any]

    @property
    def dataset(self) -> str:
        return str(self.summary["config"].get("dataset"))


@dataclass
class Gathered:
    summaries: list[Found]
    warnings: list[str]  # one line per file that was skipped


def _check_summary(obj: Any) -> str | None:
    """Why ``obj`` is not a wmrbench summary, or None when it is one."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    for key in ("model", "metrics", "config"):
        if not isinstance(obj.get(key), dict):
            return f"no {key!r} object"
    metrics = obj["metrics"]
    for key in ("A_nat", "A_rob"):
        if not isinstance(metrics.get(key), (int, float)):
            return f"no metrics.{key} number"
    for key in ("A_sa", "A_tr"):
        if not isinstance(metrics.get(key), dict):
            return f"no metrics.{key} object"
    return None


def gather(results_dir: str | Path) -> Gathered:
    """Every summary.json under ``results_dir``, in path order; bad files become warnings."""
    root = Path(results_dir)
    if not root.is_dir():
        raise WmrbenchError(f"results folder not found: {root}")
    summaries, warnings = [], []
    for path in sorted(root.rglob("summary.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"skipped {path}: not valid JSON ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            continue
        problem = _check_summary(obj)
        if problem:
            warnings.append(f"skipped {path}: not a wmrbench summary ({problem})")
            continue
        name = path.parent.relative_to(root).as_posix()
        summaries.append(Found(str(obj.get("run", "?")) if name == "." else name, path.parent, obj))
    return Gathered(summaries, warnings)


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


def compare_with_paper(frame: pd.DataFrame, kind: TableKind, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each metric gets a '(paper)' column right after it, filled where data set, defense and alpha match."""
    paper = paper_tables() if paper is None else paper
    tables = (1, 2, 3) if kind is TableKind.NON_UNIFORM else (4, 5)
    paper = paper[paper["table"].isin(tables)]
    metrics = [c for c in frame.columns if c in METRIC_COLUMNS]
    matched: dict[str, list[Any]] = {m: [] for m in metrics}
    tables_col: list[Any] = []
    for row in frame.to_dict("records"):
        hit = None
        for ref in paper.itertuples(index=False):
            if (ref.dataset == row["Dataset"] and ref.defense == row["Defense"]
                    and _same(ref.alpha_train, row["alpha_train"])
                    and (kind is TableKind.UNIFORM or _same(ref.alpha_test, row["alpha_test"]))):
                hit = ref
                break
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


def build_table(summaries: list[Found], kind: TableKind, sort_by: str | None = None) -> pd.DataFrame:
    """One table: rows in (data set, model, alpha_test) order, then stably by ``sort_by``."""
    if kind is TableKind.NON_UNIFORM:
        rows, columns = [r for f in summaries for r in non_uniform_rows(f.summary, f.name)], PAPER_NON_UNIFORM_COLUMNS
    else:
        rows, columns = [r for f in summaries for r in uniform_rows(f.summary, f.name)], PAPER_UNIFORM_COLUMNS
    frame = pd.DataFrame(rows, columns=columns)
    keys = [c for c in ("Dataset", "Model", "alpha_test") if c in frame.columns]
    frame = frame.sort_values(keys, kind="mergesort", na_position="last", key=_sort_key).reset_index(drop=True)
    if sort_by is not None and sort_by in frame.columns:
        # Accuracies best first; names and alphas in increasing order. Missing values last.
        frame = frame.sort_values(sort_by, ascending=not sort_by.startswith(METRIC_COLUMNS), kind="mergesort",
                                  na_position="last", key=_sort_key).reset_index(drop=True)
    return frame


def _sort_key(series: pd.Series) -> pd.Series:
    # Mixed None/str columns cannot be compared: sort text as text, numbers as numbers.
    if not pd.api.types.is_numeric_dtype(series):
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() == series.notna().sum():
            return numeric
        return series.astype("string")
    return series


def resolve_sort_column(sort_by: str | None, kinds: list[TableKind]) -> str | None:
    """The column ``--sort-by`` names (case-insensitive), or one line listing the columns."""
    if sort_by is None:
        return None
    columns = list(dict.fromkeys(
        c for k in kinds for c in (PAPER_NON_UNIFORM_COLUMNS if k is TableKind.NON_UNIFORM else PAPER_UNIFORM_COLUMNS)
    ))
    for column in columns:
        if column.lower() == sort_by.lower():
            return column
    raise WmrbenchError(f"--sort-by {sort_by!r} is not a column; choose one of: {', '.join(columns)}")


@dataclass
class Leaderboard:
    tables: dict[TableKind, pd.DataFrame]
    files: list[Path]
    warnings: list[str]


def leaderboard(
    results_dir: str | Path, fmt: TableFormat = TableFormat.MD, table: TableKind = TableKind.ALL,
    sort_by: str | None = None, compare_paper: bool = False, output: str | Path | None = None,
) -> Leaderboard:
    """Gather, build the tables, write them atomically (into ``results_dir`` or ``output``)."""
    kinds = [TableKind.NON_UNIFORM, TableKind.UNIFORM] if table is TableKind.ALL else [table]
    sort_column = resolve_sort_column(sort_by, kinds)
    if output is not None and fmt is TableFormat.CSV and len(kinds) > 1:
        raise WmrbenchError("a CSV file holds one table: add --table non-uniform or --table uniform, or leave out --output")
    found = gather(results_dir)
    if not found.summaries:
        where = f"; skipped {len(found.warnings)} bad file(s)" if found.warnings else ""
        raise WmrbenchError(f"no summary.json under {results_dir}{where}")
    tables = {}
    for kind in kinds:
        frame = build_table(found.summaries, kind, sort_column)
        tables[kind] = compare_with_paper(frame, kind) if compare_paper else frame
    files = []
    if output is not None:
        parts = [_section(tables[k], k, fmt, titled=len(kinds) > 1) for k in kinds]
        files.append(atomic_write_text(output, "\n".join(parts)))
    else:
        for kind in kinds:
            path = Path(results_dir) / f"leaderboard-{kind.value}{fmt.suffix}"
            files.append(atomic_write_text(path, _section(tables[kind], kind, fmt, titled=False)))
    return Leaderboard(tables, files, found.warnings)


def _section(frame: pd.DataFrame, kind: TableKind, fmt: TableFormat, titled: bool) -> str:
    body = render(frame, fmt, caption=TITLES[kind])
    return f"## {TITLES[kind]}\n\n{body}" if titled and fmt is TableFormat.MD else body
