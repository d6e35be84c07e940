"""``leaderboard``: every ``summary.json`` under a folder -> the paper's tables, beside its numbers.

Tables 1-3 (non-uniform attacks): Defense, alpha_train, alpha_test, A_rob, A_sa, A_tr.
Tables 4-5 (uniform attacks): Defense, 1/lambda, alpha_train, A_nat, A_rob.
Each row also names the data set and the model (the result's folder under the results folder).
The output depends on nothing but the summaries: rerunning gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wmrbench.core.errors import WmrbenchError, render_settings, setting
from wmrbench.results.partial_layout import PARTIAL_DIR, unfinished
from wmrbench.core.io import TMP_SUFFIX, atomic_write_text, write_target
from wmrbench.results.records import Summary, read_summary
from wmrbench.report.paper import compare_with_paper
from wmrbench.report.render import CiStyle, TableFormat, render
from wmrbench.report.robustbench import write_model_infos
from wmrbench.results.uncertainty import few_examples_line, with_uncertainty
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


def _walk(root: Path, warnings: list[str]) -> list[Path]:
    """Every folder under ``root`` (itself included), following symlinked folders: a result linked
    into the results folder is a result. A link that points nowhere, or back into a folder already
    walked (a loop, or a second path to the same result), is a warning, never a silent skip."""
    folders, seen = [], set()
    for top, dirs, files in os.walk(root, followlinks=True):
        here = Path(top)
        real = here.resolve()
        if real in seen:
            warnings.append(f"skipped {here}: a link to {real}, which is already read")
            dirs[:] = []
            continue
        seen.add(real)
        folders.append(here)
        dirs.sort()
        for name in files:
            if (here / name).is_symlink() and not (here / name).exists():
                warnings.append(f"skipped {here / name}: a link to {os.readlink(here / name)}, which does not exist")
    return sorted(folders)


def gather(results_dir: str | Path) -> Gathered:
    """Every summary.json under ``results_dir``, in path order; a file that is not a summary of
    this schema becomes a warning naming it (one bad file must not hide every other result), and
    so does an unfinished evaluation, with the command that finishes it."""
    root = Path(results_dir)
    if not root.is_dir():
        raise WmrbenchError(f"results folder not found: {root}")
    summaries, warnings = [], []
    folders = _walk(root, warnings)
    for path in [f / "summary.json" for f in folders if (f / "summary.json").is_file()]:
        try:
            summary = read_summary(path)
        except WmrbenchError as exc:  # its message starts with the path and says what is wrong
            warnings.append(f"skipped {exc}")
            continue
        try:  # a v1 summary has no intervals: they are computed from the records beside it
            summary = with_uncertainty(summary, path.parent)
        except WmrbenchError as exc:
            warnings.append(f"no intervals for {path}: {exc}")
        name = path.parent.relative_to(root).as_posix()
        summaries.append(Found((summary.run or "?") if name == "." else name, path.parent, summary))
    stopped = [run for run in map(unfinished, [f for f in folders if (f / PARTIAL_DIR).is_dir()]) if run is not None]
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
        skipped.append(render_settings(f"skipped {found.unfinished} unfinished evaluations (finish each with wmrbench evaluate ... {setting('resume')})"))
    return WmrbenchError("; ".join([f"no summary.json under {results_dir}", *skipped]))


STDOUT = "-"  # --output -: the file's text goes to standard output instead of a file


AUDIT_NAME = "audit.json"  # ``wmrbench audit`` writes it beside a result


STALE = "stale"  # an audit.json made on other weights or other examples than the result beside it


def audit_status(folder: Path, summary: Summary) -> str:
    """The verdict of ``wmrbench audit`` on the result ``summary`` in ``folder``: pass / warn / fail;
    "not run" without an audit; :data:`STALE` for an audit of other weights or other examples
    (``evaluate --overwrite`` with another model or another --n-examples keeps the old audit.json),
    or one that does not record them, so that no verdict is shown beside a model it was not made on."""
    try:
        doc = json.loads((folder / AUDIT_NAME).read_text())
        status = doc.get("status")
    except (OSError, ValueError, AttributeError):
        return "not run"
    if status not in ("pass", "warn", "fail"):
        return "not run"
    made_on = (doc.get("model_sha256"), doc.get("data_sha256"))  # the examples' hash covers their number
    if None in made_on or made_on != (summary.model_sha256, summary.data_sha256):
        return STALE
    return status


@dataclass(frozen=True)
class Leaderboard:
    tables: dict[TableKind, pd.DataFrame]
    files: list[Path]
    warnings: list[str]  # files skipped, unfinished evaluations
    few_examples: list[str] = field(default_factory=list)  # at most one line: the results resting on n_eff < 100
    text: str | None = None  # what --output - prints (no file is written then)


def leaderboard(
    results_dir: str | Path, fmt: TableFormat = TableFormat.MD, table: TableKind = TableKind.ALL,
    sort_by: str | None = None, compare_paper: bool = False, output: str | Path | None = None,
    ci: CiStyle = CiStyle.PM,
) -> Leaderboard:
    """Gather, build the tables, write them atomically (into ``results_dir`` or ``output``).
    Every number carries its 95% interval (``ci`` says how); a result whose weighted metrics
    rest on fewer than 100 effective examples gets a warning line.
    With ``output`` ``"-"`` nothing is written and the file's text is returned for standard output."""
    kinds = [TableKind.NON_UNIFORM, TableKind.UNIFORM] if table is TableKind.ALL else [table]
    sort_column = resolve_sort_column(sort_by, kinds)
    to_stdout = output is not None and str(output) == STDOUT
    if output is not None and fmt is TableFormat.CSV and len(kinds) > 1:
        raise WmrbenchError(f"a CSV file holds one table: add {setting('table')} non-uniform or {setting('table')} uniform, or leave out {setting('output')}")
    if to_stdout and fmt is TableFormat.ROBUSTBENCH:
        raise WmrbenchError(f"{setting('format')} robustbench writes one file per result: give {setting('output')} a folder, not -")
    if output is not None and not to_stdout and fmt is not TableFormat.ROBUSTBENCH:
        write_target(output, hint=f"to print the table, use {setting('output')} -")  # refused before any work
    found = gather(results_dir)
    if not found.summaries:
        raise nothing_found(results_dir, found)
    summaries, names = [f.summary for f in found.summaries], [f.name for f in found.summaries]
    warnings = found.warnings
    # Said once, naming the rows it concerns (a line per result and metric drowned the table).
    line = few_examples_line([(f.name, f.summary.uncertainty) for f in found.summaries if f.summary.uncertainty is not None])
    few = [line] if line else []
    audits = {f.name: audit_status(f.folder, f.summary) for f in found.summaries}
    stale = [name for name, status in audits.items() if status == STALE]
    if stale:
        warnings = [*warnings, f"audit {STALE} for {', '.join(stale)}: made on other weights or other examples than "
                               "the result shown (run wmrbench audit again on the same model and examples)"]
    tables = {}
    for kind in kinds:
        frame = build_table(summaries, LAYOUTS[kind], names)
        frame["audit"] = frame["Model"].map(audits)
        frame = sort_rows(frame, sort_column)
        tables[kind] = compare_with_paper(frame, kind) if compare_paper else frame
    if fmt is TableFormat.ROBUSTBENCH:
        out_dir = Path(output) if output is not None else Path(results_dir) / "robustbench"
        return Leaderboard(tables, write_model_infos(summaries, names, out_dir), warnings, few)
    if output is not None:
        parts = [_section(tables[k], k, fmt, titled=len(kinds) > 1, ci=ci) for k in kinds]
        if to_stdout:
            return Leaderboard(tables, [], warnings, few, "\n".join(parts))
        remove_stale_tmp_beside(Path(output))
        files = [atomic_write_text(output, "\n".join(parts))]
    else:
        files = []
        for k in kinds:
            path = Path(results_dir) / f"leaderboard-{k.value}{fmt.suffix}"
            remove_stale_tmp_beside(path)
            files.append(atomic_write_text(path, _section(tables[k], k, fmt, titled=False, ci=ci)))
    return Leaderboard(tables, files, warnings, few)


# A leaderboard writes in well under this; an older temporary file of the same name was left by
# a writer that was killed (the folder has no lock: a live writer's newer file is left alone).
STALE_AFTER_S = 600.0


def remove_stale_tmp_beside(path: Path, now: float | None = None) -> list[Path]:
    """Delete the temporary files ``.<NAME>.<12 hex>.tmp`` (wmrbench.core.io's atomic write, exactly)
    that an interrupted write of ``path`` left beside it, when older than STALE_AFTER_S."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{12}}{re.escape(TMP_SUFFIX)}")
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(OSError):
        for tmp in path.parent.iterdir():
            if not pattern.fullmatch(tmp.name):
                continue
            with contextlib.suppress(OSError):
                info = tmp.lstat()
                if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_AFTER_S:
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def _section(frame: pd.DataFrame, kind: TableKind, fmt: TableFormat, titled: bool, ci: CiStyle = CiStyle.PM) -> str:
    body = render(frame, fmt, caption=TITLES[kind], ci=ci)
    return f"## {TITLES[kind]}\n\n{body}" if titled and fmt is TableFormat.MD else body
