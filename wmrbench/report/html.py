"""``wmrbench report``: every result under one or more folders, as ONE self-contained HTML page.

The page holds the leaderboard (sortable, filterable, searchable; ties with the leader marked),
the A_sa / A_tr curves against alpha_test with interval bands for the selected rows, a page
per result (configuration, versions, hashes, the command that reruns it, its audit and eps
sweep, its paired comparison with the leader) and the examples that decide A_sa.

Why these tools: Jinja2 (already installed with torch) renders the page with autoescaping on,
so every name, path and setting read from a result is escaped; the charts are SVG drawn in
Python (:mod:`.svg`) and the images lossless WebP strips (Pillow, installed with torchvision),
both inline; the sorting, filtering, selection and the gallery's perturbation row are a small
handwritten script in the page. Nothing is
fetched: no CDN, no font, no server, no build step. The page's Content-Security-Policy allows
no network at all and only the page's own script (by its SHA-256), so a ``<script>`` in a run
name would neither show as markup nor run.

It reads result files only (summary.json, records.csv, audit.json, examples.pt /
adversarial.pt): it never imports the evaluation or the attack engine.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from wmrbench.results.comparison import Comparison, compare_against, verdict
from wmrbench.core.config import metric_label, parse_metric_label
from wmrbench.core.errors import WmrbenchError, first_line
from wmrbench.core.io import atomic_write_text, write_target
from wmrbench.results.points import DEFAULT_KEEP
from wmrbench.core.progress import progress_bar
from wmrbench.core.protocol import protocol_text
from wmrbench.results.records import RECORDS_NAME, Summary, read_records
from wmrbench.results.groups import group_summary, load_group
from wmrbench.report.board import A_ROB, Board, Cell, Row, RowKind, build_board, group_row, result_row, seed_bases
from wmrbench.report.gallery import Gallery, gallery
from wmrbench.report.leaderboard import AUDIT_NAME, Found, audit_status, gather, nothing_found, remove_stale_tmp_beside
from wmrbench.report.svg import Series, colour, line_chart
from wmrbench.results.uncertainty import BootstrapConfig

TEMPLATE = "report.html.j2"
SHOWN_CURVES = 5  # rows whose curves show when the page opens (the first of the leaderboard)


@dataclass(frozen=True)
class ReportConfig:
    results_dirs: tuple[str, ...]
    output: str
    keep: int = DEFAULT_KEEP  # the examples shown per result
    title: str = "wmrbench report"
    show_progress: bool = True


@dataclass(frozen=True)
class AuditLine:
    number: int
    name: str
    status: str
    detail: str
    suggests: str


@dataclass(frozen=True)
class ComparisonLine:
    other: str  # the other result's name
    metric: str  # "A_sa(2)"
    difference: float  # this result minus the other, in points
    lo: float
    hi: float
    verdict: str


@dataclass(frozen=True)
class Page:
    row: Row
    folder: str
    protocol: str
    config_json: Markup  # escaped
    versions: dict[str, Any]
    hashes: dict[str, str]
    rerun: str
    audit: tuple[AuditLine, ...]
    audit_status: str
    eps_sweep: Markup | None
    comparisons: tuple[ComparisonLine, ...]
    comparison_note: str
    gallery: Gallery
    n_eff_alpha: float | None  # A_sa's n_eff at the gallery's alpha


@dataclass(frozen=True)
class Built:
    path: Path
    results: int
    bytes: int
    warnings: list[str]


def _audit(folder: Path) -> tuple[tuple[AuditLine, ...], dict[str, Any] | None]:
    try:
        doc = json.loads((folder / AUDIT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (), None
    if not isinstance(doc, dict):
        return (), None
    lines = []
    for c in doc.get("checks") or []:
        if isinstance(c, dict):
            lines.append(AuditLine(int(c.get("number", 0) or 0), str(c.get("name", "")), str(c.get("status", "")),
                                   str(c.get("detail", "")), str(c.get("suggests", ""))))
    return tuple(lines), doc


def _sa_alpha(label: str) -> float | None:
    """The alpha_test of an audit stage's A_sa label ('A_sa@2' -> 2.0); None for any other."""
    try:
        metric, alpha = parse_metric_label(label)
    except ValueError:
        return None
    return alpha if metric == "A_sa" else None


def eps_sweep(row_id: str, doc: dict[str, Any] | None) -> Markup | None:
    """The audit's eps sweep (A_rob, and A_sa at the largest alpha, against eps) as SVG."""
    if doc is None or not isinstance(doc.get("stages"), dict):
        return None
    try:
        base = doc["config"]["base"]["attack"]
        base_eps, steps, restarts = float(base["eps"]), int(base["steps"]), int(base["restarts"])
    except (KeyError, TypeError, ValueError):
        return None
    points: dict[float, dict[str, float]] = {}
    for name, metrics in doc["stages"].items():
        if not isinstance(metrics, dict):
            continue
        if name.startswith("pgd-eps"):
            try:
                points[float(name[len("pgd-eps"):])] = metrics
            except ValueError:
                continue
        elif name == f"pgd-s{steps}-r{restarts}":
            points[base_eps] = metrics
    if len(points) < 2:
        return None
    xs = sorted(points)
    # audit.json names a stage's metrics by label (A_sa@2): read back as (metric, alpha) here
    sa = sorted(a for k in points.get(base_eps, {}) if (a := _sa_alpha(k)) is not None)
    series = [Series(f"{row_id}-rob", "A_rob", tuple(xs), tuple(float(points[x].get("A_rob", 0.0)) for x in xs),
                     (None,) * len(xs), (None,) * len(xs), colour(0))]
    if sa and all(metric_label("A_sa", sa[-1]) in points[x] for x in xs):
        top = metric_label("A_sa", sa[-1])
        series.append(Series(f"{row_id}-sa", metric_label("A_sa", sa[-1], paren=True), tuple(xs),
                             tuple(float(points[x][top]) for x in xs), (None,) * len(xs), (None,) * len(xs), colour(1)))
    return line_chart("The audit's eps sweep", "eps", "accuracy (%)", series, [s.row for s in series], "chart small")


def _comparisons(pairs: Sequence[tuple[str, Found, Found | None]], config: BootstrapConfig) -> dict[str, tuple[tuple[ComparisonLine, ...], str]]:
    """Per row id, its result against the leader of its threat model, paired on the same
    examples: every result of one leader in one bootstrap pass (``compare_against``: the same
    numbers as one ``compare_records`` per pair, a fraction of the time)."""
    out: dict[str, tuple[tuple[ComparisonLine, ...], str]] = {}
    cache: dict[Path, Any] = {}

    def records(f: Found) -> Any:
        if f.folder not in cache:
            try:
                cache[f.folder] = read_records(f.folder / RECORDS_NAME)
            except WmrbenchError as exc:
                cache[f.folder] = exc
        return cache[f.folder]

    followers: dict[Path, tuple[Found, list[tuple[str, Found]]]] = {}
    for row_id, found, leader in pairs:
        if leader is None:
            out[row_id] = (), "no other result on the same data set and threat model"
        elif leader.folder == found.folder:
            out[row_id] = (), "this result leads its data set and threat model on A_rob: the other results' pages compare with it"
        elif isinstance(records(found), WmrbenchError):
            out[row_id] = (), f"no paired comparison: {found.name} has no readable {RECORDS_NAME}"
        elif isinstance(records(leader), WmrbenchError):
            out[row_id] = (), f"no paired comparison: {leader.name} has no readable {RECORDS_NAME}"
        else:
            followers.setdefault(leader.folder, (leader, []))[1].append((row_id, found))
    for leader, group in followers.values():
        done = compare_against(leader.name, records(leader), [(f.name, records(f)) for _, f in group], config)
        for (row_id, found), c in zip(group, done, strict=True):
            out[row_id] = _lines(found, leader, c, config)
    return out


def _lines(found: Found, leader: Found, c: Comparison | WmrbenchError, config: BootstrapConfig) -> tuple[tuple[ComparisonLine, ...], str]:
    if isinstance(c, WmrbenchError):
        return (), f"no paired comparison with {leader.name}: {first_line(c).rstrip('.')}"
    # The sign says which is higher; the verdict only whether the interval excludes 0 (one word a
    # row: a 200-result page holds 199 of these tables).
    lines = tuple(ComparisonLine(leader.name, metric_label(d.metric, d.alpha, paren=True), d.difference,
                                 d.lo, d.hi, verdict(d).split("(", 1)[-1].split(" at ")[0].rstrip(")"))
                  for d in c.differences)
    note = (f"paired bootstrap over the same {c.n_examples} examples ({config.resamples} resamples), {found.name} minus "
            f"{leader.name}; significant: the 95% interval excludes 0. One result a side: the interval covers the test "
            "examples, not the training runs' seed-to-seed spread")
    return lines, note


def _curves(board: Board) -> dict[str, Markup]:
    shown = [r.id for r in board.rows[:SHOWN_CURVES]]
    charts = {}
    for metric in ("A_sa", "A_tr"):
        series = []
        for i, r in enumerate(board.rows):
            keys = [(a, r.cells[(metric, a)]) for a in board.alphas if (metric, a) in r.cells]
            if keys:
                series.append(Series(r.id, r.name, tuple(x for x, _ in keys), tuple(c.value for _, c in keys),
                                     tuple(c.lo for _, c in keys), tuple(c.hi for _, c in keys), colour(i)))
        charts[metric] = line_chart(f"{metric} against alpha_test (95% intervals)", "alpha_test", f"{metric} (%)", series, shown)
    return charts


def _pages(board: Board, found: Sequence[Found], keep: int, show_progress: bool) -> list[Page]:
    # Result rows are r0, r1, ... in the order of ``found`` (build_board); group rows have no page yet.
    found_by_id = {f"r{i}": f for i, f in enumerate(found)}
    by_id = {r.id: (r, found_by_id[r.id]) for r in board.rows if r.kind is RowKind.RESULT}
    leaders: dict[tuple[str, str], Found] = {}
    for r, f in by_id.values():
        if r.cells.get(A_ROB) is not None and r.cells[A_ROB].leader:
            leaders.setdefault((r.dataset, r.threat), f)
    comparisons = _comparisons([(r.id, f, leaders.get((r.dataset, r.threat))) for r, f in by_id.values()], BootstrapConfig())
    pages = []
    with progress_bar(enabled=show_progress) as progress:
        task = progress.add_task("report pages", total=len(by_id), info="")
        for r, f in by_id.values():
            pages.append(_page(r, f, comparisons[r.id], keep))
            progress.advance(task, 1)
    return pages


def _page(r: Row, f: Found, comparison: tuple[tuple[ComparisonLine, ...], str], keep: int) -> Page:
    s: Summary = f.summary
    lines, doc = _audit(f.folder)
    comparisons, note = comparison
    shown = gallery(f.folder, s, keep)
    n_eff = s.uncertainty.n_eff.get("A_sa", {}).get(shown.alpha) if s.uncertainty is not None else None
    hashes = {k: v for k, v in (("model", s.model_sha256), ("data", s.data_sha256), ("records", s.records_sha256)) if v}
    return Page(
        row=r, folder=str(f.folder), protocol=protocol_text(s.config),
        config_json=_pre_text(json.dumps({k: v for k, v in s.to_json().items() if k not in ("metrics", "uncertainty")}, indent=1)),
        versions=dict(s.versions), hashes=hashes, rerun=shlex.join(["wmrbench", "rerun", str(f.folder / "summary.json")]),
        audit=lines, audit_status=audit_status(f.folder, f.summary), eps_sweep=eps_sweep(r.id, doc), comparisons=comparisons,
        comparison_note=note, gallery=shown, n_eff_alpha=n_eff,
    )


def _pre_text(text: str) -> Markup:
    """``text`` escaped for an element's content: &, < and > only. Quotes need no escaping
    outside attributes, and a configuration's JSON holds about a hundred of them, 5 bytes each
    as &#34; (a fifth of a 200-result page's configurations)."""
    return Markup(html.escape(text, quote=False))


def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    return env


def _template_text() -> str:
    return resources.files("wmrbench.report").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")


SCRIPT_NAME = "report.js"


def _script() -> str:
    return resources.files("wmrbench.report").joinpath("templates", SCRIPT_NAME).read_text(encoding="utf-8")


def render_page(board: Board, pages: Sequence[Page], title: str, sources: Sequence[str], warnings: Sequence[str]) -> str:
    script = _script()
    # The page's Content-Security-Policy names its one script by hash: any other script (one a
    # run name smuggled in past the escaping, say) is refused by the browser.
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    template = _environment().from_string(_template_text())
    return template.render(board=board, pages=pages, title=title, sources=sources, warnings=warnings,
                           curves=_curves(board), script=Markup(script), script_hash=f"sha256-{digest}",
                           colours={r.id: colour(i) for i, r in enumerate(board.rows)},
                           shown={r.id for r in board.rows[:SHOWN_CURVES]})


def gather_all(results_dirs: Sequence[str]) -> tuple[list[Found], list[str]]:
    """Every result under each folder; with several folders each name starts with its folder's."""
    found, warnings = [], []
    for root in results_dirs:
        got = gather(root)
        if not got.summaries:
            if len(results_dirs) == 1:
                raise nothing_found(root, got)
            warnings.append(f"no summary.json under {root}")
        warnings += got.warnings
        prefix = f"{Path(root).name or root}/" if len(results_dirs) > 1 else ""
        found += [Found(prefix + f.name, f.folder, f.summary) for f in got.summaries]
    if not found:
        raise WmrbenchError(f"no summary.json under {', '.join(results_dirs)}")
    return found, warnings


def seed_group_rows(found: Sequence[Found], named: Sequence[tuple[str, Summary, str]]) -> tuple[list[Row], list[str]]:
    """One row per training-seed group: results named ``BASE-sSEED`` that share a base (two runs
    at least) and pass :func:`wmrbench.results.groups.load_group`'s checks (the same examples, no setting
    but the seed different). Its cells are the group's mean over runs with the two-level interval
    (runs resampled, then examples); its runs keep their own rows. A base whose runs do not make
    a group is named in a warning, not shown as one."""
    rows, refused = [], []
    for k, (base, idx) in enumerate(seed_bases([f.name for f in found]).items()):
        try:
            summary = group_summary(load_group([found[i].folder for i in idx], name=base))
        except WmrbenchError as exc:
            refused.append(f"{base}: its seeds are not shown as a group ({exc})")
            continue
        cells = {(m.metric, m.alpha): Cell(m.mean, m.lo, m.hi) for m in summary.metrics}
        members = [result_row(f"g{k}m{j}", *named[i]) for j, i in enumerate(idx)]
        rows.append(group_row(f"g{k}", f"{base} ({len(idx)} seeds)", members, cells))
    return rows, refused


def build_report(cfg: ReportConfig) -> Built:
    """Gather, build the page, write it atomically to ``cfg.output``; training-seed groups
    enter as rows of their own (:func:`seed_group_rows`)."""
    if cfg.keep < 1:
        raise WmrbenchError(f"keep is {cfg.keep}: show at least 1 example per result")
    target = write_target(cfg.output)  # refused before any work
    found, warnings = gather_all(cfg.results_dirs or ("results",))
    named = [(f.name, f.summary, audit_status(f.folder, f.summary)) for f in found]
    groups, refused = seed_group_rows(found, named)
    warnings = [*warnings, *refused]
    board = build_board(named, groups)
    pages = _pages(board, found, cfg.keep, cfg.show_progress)
    text = render_page(board, pages, cfg.title, list(cfg.results_dirs), warnings)
    remove_stale_tmp_beside(target)
    path = atomic_write_text(cfg.output, text)
    return Built(path, len(found), len(text.encode("utf-8")), warnings)
