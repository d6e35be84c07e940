"""The HTML report's leaderboard as data: one row per result (or per training-seed group), one
cell per metric with its 95% interval and n_eff, which cells tie with their column's leader,
and the AutoAttack number of the same model where a result holds one.

Ties: within one threat model (data set, norm, eps) and one column, the leader is the highest
value; a row whose interval overlaps the leader's is marked tied with it, so that a rank never
claims more than the examples support. Without intervals only an equal value ties.

Rows are a small closed type (:class:`Row`): a training-seed group is a row of kind ``group``
whose ``members`` name its runs and whose cells hold the group's two-level interval
(:func:`group_row`); the page renders both kinds alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from wmrbench.core.attack_config import AttackMethod
from wmrbench.core.config import metric_label
from wmrbench.core.protocol import protocol_columns
from wmrbench.results.records import Summary
from wmrbench.report.tables import defense_label

WEIGHTED = ("A_sa", "A_tr", "A_wc")
A_ROB = ("A_rob", None)  # the rank's column


class RowKind(str, Enum):
    RESULT = "result"
    GROUP = "group"  # training seeds of one method: a two-level interval, the runs it holds


@dataclass(frozen=True)
class Cell:
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n_eff: float | None = None
    tied: bool = False  # its interval overlaps the column leader's (same threat model)
    leader: bool = False

    @property
    def has_interval(self) -> bool:
        return self.lo is not None and self.hi is not None


# A cell's place in a row: (metric, alpha_test), ("A_rob", None) or ("A_sa", 2.0).
CellKey = tuple[str, float | None]


@dataclass(frozen=True)
class Column:
    metric: str  # A_nat, A_rob, A_sa, A_tr, A_wc
    alpha: float | None = None  # the alpha_test of a weighted metric

    @property
    def key(self) -> CellKey:
        return (self.metric, self.alpha)

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.alpha, paren=True)


@dataclass(frozen=True)
class Row:
    id: str  # r0, r1, ...: the anchor of its page and its curves
    kind: RowKind
    name: str
    dataset: str
    defense: str
    model: str
    attack: str
    threat: str  # "Linf 0.3": rows are ranked only against rows of the same data set and threat
    protocol: dict[str, str]  # the protocol columns, as text
    audit: str  # pass | warn | fail | not run
    cells: dict[CellKey, Cell]
    n_examples: int
    autoattack: Cell | None = None  # A_rob of an AutoAttack result of the same model, where one exists
    members: tuple[str, ...] = ()  # a group's runs
    rank: str = ""  # "1", "=1" (tied with the leader), "3"


@dataclass(frozen=True)
class Board:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    alphas: tuple[float, ...]  # every alpha_test found, ascending (the curves' x)
    datasets: tuple[str, ...]
    defenses: tuple[str, ...]
    attacks: tuple[str, ...]


def _cell(summary: Summary, metric: str, alpha: float | None = None) -> Cell | None:
    m, u = summary.metrics, summary.uncertainty
    if alpha is None:
        value = getattr(m, metric)
    else:
        value = getattr(m, metric).get(alpha)
        if value is None:
            return None
    lo_hi = u.interval(metric, alpha) if u is not None else None
    n_eff = u.n_eff.get(metric, {}).get(alpha) if u is not None and alpha is not None else None
    return Cell(float(value), *(lo_hi or (None, None)), n_eff=n_eff)


def _text(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def result_row(row_id: str, name: str, summary: Summary, audit: str) -> Row:
    """A result's row: every metric it holds, with its interval and n_eff."""
    cfg = summary.config
    protocol = {k: _text(v) for k, v in protocol_columns(cfg, summary.metrics.n_examples).items()}
    cells: dict[CellKey, Cell] = {(m, None): c for m in ("A_nat", "A_rob") if (c := _cell(summary, m))}
    for metric in WEIGHTED:
        for alpha in getattr(summary.metrics, metric):
            found = _cell(summary, metric, alpha)
            if found is not None:
                cells[(metric, alpha)] = found
    return Row(
        id=row_id, kind=RowKind.RESULT, name=name, dataset=summary.dataset or "custom", defense=defense_label(summary.model),
        model=summary.model.arch or summary.model.model_id or summary.model.factory or summary.model.name,
        attack=protocol["Attack"], threat=f"{protocol['Norm']} {protocol['eps']}", protocol=protocol, audit=audit,
        cells=cells, n_examples=summary.metrics.n_examples,
    )


def group_row(row_id: str, name: str, members: Sequence[Row], cells: Mapping[CellKey, Cell]) -> Row:
    """A training-seed group as one row: its runs (``members``, rows of one data set and
    protocol) and ``cells`` holding the group's mean and two-level interval per column."""
    if not members:
        raise ValueError("a group holds at least one run")
    first = members[0]
    return replace(first, id=row_id, kind=RowKind.GROUP, name=name, cells=dict(cells), autoattack=None,
                   members=tuple(m.name for m in members), audit=", ".join(sorted({m.audit for m in members})))


# A run of a training-seed group is named RUN-sSEED (`train --seeds`, `reproduce --train-seeds`).
SEED_RUN = re.compile(r"^(?P<base>.+)-s(?P<seed>[0-9]+)$")


def seed_bases(names: Sequence[str]) -> dict[str, list[int]]:
    """The names that share a base and differ in their ``-sSEED`` suffix: base -> their indices,
    for bases with at least two runs (a group of one is its run)."""
    bases: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        match = SEED_RUN.match(name)
        if match:
            bases.setdefault(match["base"], []).append(i)
    return {base: idx for base, idx in bases.items() if len(idx) > 1}


def _same_model(a: Summary, b: Summary) -> bool:
    if a.model_sha256 and b.model_sha256:
        return a.model_sha256 == b.model_sha256
    ka = (a.model.source, a.model.checkpoint, a.model.model_id, a.model.factory)
    return ka == (b.model.source, b.model.checkpoint, b.model.model_id, b.model.factory)


def autoattack_cells(summaries: Sequence[Summary]) -> list[Cell | None]:
    """Per summary, the A_rob (with its interval) of an AutoAttack result of the same model on
    the same data set and threat model (the first found); None where there is none."""
    aa = [s for s in summaries if s.config.method is AttackMethod.AUTOATTACK]
    out: list[Cell | None] = []
    for s in summaries:
        match = next((t for t in aa if t.dataset == s.dataset and t.config.attack.norm is s.config.attack.norm
                      and math.isclose(t.config.attack.eps, s.config.attack.eps) and _same_model(s, t)), None)
        out.append(_cell(match, "A_rob") if match is not None else None)
    return out


def _overlap(a: Cell, b: Cell) -> bool:
    if a.has_interval and b.has_interval:
        return a.lo <= b.hi and b.lo <= a.hi  # type: ignore[operator]
    return a.value == b.value


def mark_ties(rows: Sequence[Row], columns: Sequence[Column]) -> list[Row]:
    """Each cell's leader / tied flags within its (data set, threat) and column, and each row's
    rank by A_rob there: "=1" for a row tied with the leader."""
    out = [replace(r, cells=dict(r.cells)) for r in rows]
    pools: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(out):
        pools.setdefault((r.dataset, r.threat), []).append(i)
    for members in pools.values():
        for col in columns:
            have = [i for i in members if out[i].cells.get(col.key) is not None and out[i].cells[col.key].value is not None]
            if not have:
                continue
            lead = max(have, key=lambda i: out[i].cells[col.key].value)  # the first of equal values
            top = out[lead].cells[col.key]
            for i in have:
                c = out[i].cells[col.key]
                out[i].cells[col.key] = replace(c, leader=i == lead, tied=i != lead and _overlap(c, top))
        by_rob = sorted((i for i in members if out[i].cells.get(A_ROB)), key=lambda i: -out[i].cells[A_ROB].value)
        for place, i in enumerate(by_rob, start=1):
            c = out[i].cells[A_ROB]
            out[i] = replace(out[i], rank="1" if c.leader else "=1" if c.tied else str(place))
    return out


def build_board(named: Sequence[tuple[str, Summary, str]], groups: Sequence[Row] = ()) -> Board:
    """The leaderboard of ``named`` results ((name, summary, audit verdict) each) and of any
    training-seed group rows already built (:func:`group_row`)."""
    summaries = [s for _, s, _ in named]
    rows = [replace(result_row(f"r{i}", name, s, audit), autoattack=aa)
            for i, ((name, s, audit), aa) in enumerate(zip(named, autoattack_cells(summaries)))]
    rows += list(groups)
    alphas = sorted({alpha for r in rows for _, alpha in r.cells if alpha is not None})
    columns = [Column("A_nat"), Column("A_rob")]
    for alpha in alphas:
        columns += [Column(m, alpha) for m in WEIGHTED if any((m, alpha) in r.cells for r in rows)]
    # Best first within each data set and threat model (the page's script re-sorts on any column).
    rows = sorted(mark_ties(rows, columns), key=lambda r: (r.dataset, r.threat, -(r.cells[A_ROB].value if A_ROB in r.cells else -1.0)))
    return Board(tuple(columns), tuple(rows), tuple(alphas), *(tuple(sorted({getattr(r, f) for r in rows}))
                                                               for f in ("dataset", "defense", "attack")))


