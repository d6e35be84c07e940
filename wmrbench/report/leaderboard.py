"""``leaderboard``: every ``summary.json`` under a folder -> the paper's tables, beside its numbers.

Tables 1-3 (non-uniform attacks): Defense, alpha_train, alpha_test, A_rob, A_sa, A_tr.
Tables 4-5 (uniform attacks): Defense, 1/lambda, alpha_train, A_nat, A_rob.
Each row also names the data set and the model (the result's folder under the results folder).
The output depends on nothing but the summaries: rerunning gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_text
from wmrbench.records import PARTIAL_DIR, Summary, read_summary, unfinished
from wmrbench.report.paper import compare_with_paper
from wmrbench.report.render import TableFormat, render
from wmrbench.report.robustbench import write_model_infos
from wmrbench.report.tables import LAYOUTS, TITLES, TableKind, build_table, resolve_sort_column, sort_rows


@dataclass(frozen=True)
class Found:
    name: str  # the result's folder relative to the results folder (its run name when directly under it)
    folder: Path
    summary: Summary


@dataclass(frozen=True)
class Gathered:
    summaries: list[Found]
    warnings: list[str]  # one line per file that was skipped, and per unfinished evaluation
    unfinished: int = 0  # evaluations that were stopped (saved batches, no summary.json)


def gather(results_dir: str | Path) -> Gathered:
    """Every summary.json under ``results_dir``, in path order; a file that is not a summary of
    this schema becomes a warning naming it (one bad file must not hide every other result), and
    so does an unfinished evaluation, with the command that finishes it."""
    root = Path(results_dir)
    if not root.is_dir():
        raise WmrbenchError(f"results folder not found: {root}")
    summaries, warnings = [], []
    for path in sorted(root.rglob("summary.json")):
        try:
            summary = read_summary(path)
        except WmrbenchError as exc:  # its message starts with the path and says what is wrong
            warnings.append(f"skipped {exc}")
            continue
        name = path.parent.relative_to(root).as_posix()
        summaries.append(Found((summary.run or "?") if name == "." else name, path.parent, summary))
    stopped = [run for run in map(unfinished, sorted(p.parent for p in root.rglob(PARTIAL_DIR))) if run is not None]
    warnings += [f"skipped {run.folder}: an unfinished evaluation ({run.progress}, no summary.json); finish it with "
                 f"`{run.command}`" for run in stopped]
    return Gathered(summaries, warnings, len(stopped))


def nothing_found(results_dir: str | Path, found: Gathered) -> WmrbenchError:
    """The one line for a folder without a complete result: what was skipped, and how to finish
    an unfinished evaluation (the warnings are not printed when the command fails)."""
    bad = len(found.warnings) - found.unfinished
    skipped = [f"skipped {bad} bad file(s)"] if bad else []
    if found.unfinished == 1:
        skipped.append(found.warnings[-1])
    elif found.unfinished:
        skipped.append(f"skipped {found.unfinished} unfinished evaluations (finish each with wmrbench evaluate ... --resume)")
    return WmrbenchError("; ".join([f"no summary.json under {results_dir}", *skipped]))


AUDIT_NAME = "audit.json"  # ``wmrbench audit`` writes it beside a result


def audit_status(folder: Path) -> str:
    """The verdict of ``wmrbench audit`` on the model in ``folder``: pass / warn / fail, else "not run"."""
    try:
        status = json.loads((folder / AUDIT_NAME).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return "not run"
    return status if status in ("pass", "warn", "fail") else "not run"


@dataclass(frozen=True)
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
        raise nothing_found(results_dir, found)
    summaries, names = [f.summary for f in found.summaries], [f.name for f in found.summaries]
    tables = {}
    for kind in kinds:
        frame = build_table(summaries, LAYOUTS[kind], names)
        frame["audit"] = frame["Model"].map({f.name: audit_status(f.folder) for f in found.summaries})
        frame = sort_rows(frame, sort_column)
        tables[kind] = compare_with_paper(frame, kind) if compare_paper else frame
    if fmt is TableFormat.ROBUSTBENCH:
        out_dir = Path(output) if output is not None else Path(results_dir) / "robustbench"
        return Leaderboard(tables, write_model_infos(summaries, names, out_dir), found.warnings)
    if output is not None:
        parts = [_section(tables[k], k, fmt, titled=len(kinds) > 1) for k in kinds]
        files = [atomic_write_text(output, "\n".join(parts))]
    else:
        files = [atomic_write_text(Path(results_dir) / f"leaderboard-{k.value}{fmt.suffix}",
                                   _section(tables[k], k, fmt, titled=False)) for k in kinds]
    return Leaderboard(tables, files, found.warnings)


def _section(frame: pd.DataFrame, kind: TableKind, fmt: TableFormat, titled: bool) -> str:
    body = render(frame, fmt, caption=TITLES[kind])
    return f"## {TITLES[kind]}\n\n{body}" if titled and fmt is TableFormat.MD else body
