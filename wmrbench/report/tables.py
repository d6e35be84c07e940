"""Summaries -> the paper's tables, as pandas DataFrames (rendering is :mod:`.render`'s job).

Three layouts share one row builder:

* Tables 1-3 (non-uniform attacks): Dataset, Model, Defense, alpha_train, alpha_test, A_rob,
  A_sa, A_tr; one row per model and alpha_test.
* Tables 4-5 (uniform attacks): Dataset, Model, Defense, 1/lambda, alpha_train, A_nat, A_rob;
  one row per model.
* The per-result table ``evaluate`` and ``demo`` print: Model, Defense, alpha_train,
  alpha_test, A_nat, A_rob, A_sa, A_tr; one row per alpha_test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pandas as pd

from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.results.records import ModelInfo, Summary, metric_values
# The protocol's wording lives below the reports, so that evaluate's own title line shares it
# without importing the reports (wmrbench.core.protocol); these names stay importable from here.
from wmrbench.core.protocol import USES_STEP_SIZE, eps_text, protocol_columns, protocol_text  # noqa: F401

WC_COLUMN = "A_wc (wmrbench)"  # wmrbench's worst-case accuracy, never to be read as the paper's A_tr
METRIC_COLUMNS = ("A_nat", "A_rob", "A_sa", "A_tr", "A_wc")
NUMBER_COLUMNS = ("alpha_train", "alpha_test", "1/lambda", "eps", "Steps", "Step size", "Restarts", "Examples")
# What a number was measured under: rows with different protocols are never ranked together
# without these columns beside them.
PROTOCOL_COLUMNS = ("Attack", "Norm", "eps", "Steps", "Step size", "Restarts", "Restart rule", "Examples", "Precision")
PAPER_SUFFIX = " (paper)"  # the column beside a metric that holds the paper's number


class TableKind(str, Enum):
    ALL = "all"
    NON_UNIFORM = "non-uniform"  # Tables 1-3
    UNIFORM = "uniform"  # Tables 4-5


@dataclass(frozen=True)
class Layout:
    columns: tuple[str, ...]
    per_alpha: bool  # one row per alpha_test (the A_sa / A_tr tables) or one per model


NON_UNIFORM = Layout(
    ("Dataset", "Model", "Defense", "alpha_train", "alpha_test", "A_rob", "A_sa", "A_tr", WC_COLUMN, *PROTOCOL_COLUMNS),
    True,
)
UNIFORM = Layout(("Dataset", "Model", "Defense", "1/lambda", "alpha_train", "A_nat", "A_rob", *PROTOCOL_COLUMNS), False)
RESULT = Layout(("Model", "Defense", "alpha_train", "alpha_test", "A_nat", "A_rob", "A_sa", "A_tr", WC_COLUMN), True)
LAYOUTS = {TableKind.NON_UNIFORM: NON_UNIFORM, TableKind.UNIFORM: UNIFORM}
# Each metric's 95% interval travels beside it as two columns, METRIC_lo and METRIC_hi: CSV keeps
# them, the other formats fold them into the metric's cell (render's --ci).
LO, HI = "_lo", "_hi"
_METRIC_KEYS = {"A_nat": "A_nat", "A_rob": "A_rob", "A_sa": "A_sa", "A_tr": "A_tr", WC_COLUMN: "A_wc"}
TITLES = {
    TableKind.NON_UNIFORM: "Non-uniform attacks (the paper's Tables 1-3)",
    TableKind.UNIFORM: "Uniform attacks (the paper's Tables 4-5)",
}


def defense_label(model: ModelInfo) -> str:
    """'TRADES', 'PGD+ours', ... as the paper names rows; '-' when the defense is unknown (a plain
    state_dict, a zoo id, your own model): the Model column already names it."""
    if not model.defense:
        return "-"
    return f"{str(model.defense).upper()}{'+ours' if (model.alpha_train or 0.0) > 0 else ''}"


def _rows(summary: Summary, name: str | None, per_alpha: bool) -> list[dict[str, Any]]:
    """Every column any layout shows; the layout picks its own (pandas drops the others)."""
    model, metrics = summary.model, summary.metrics
    common = {
        "Dataset": summary.dataset,
        "Model": name or summary.run or model.name,
        "Defense": defense_label(model),
        "1/lambda": model.beta,  # TRADES' beta
        "alpha_train": model.alpha_train or None,  # the paper's baselines show "-"
        "A_nat": metrics.A_nat,
        "A_rob": metrics.A_rob,
        **protocol_columns(summary.config, metrics.n_examples),
    }
    if not per_alpha:
        return [common]
    return [{**common, "alpha_test": alpha, "A_sa": metrics.A_sa[alpha], "A_tr": metrics.A_tr.get(alpha),
             WC_COLUMN: metrics.A_wc.get(alpha)} for alpha in metrics.alphas]


def _interval_cells(summary: Summary, alpha: float | None) -> dict[str, float | None]:
    """METRIC_lo / METRIC_hi for every metric column (None where the summary has no interval)."""
    unc = summary.uncertainty
    out: dict[str, float | None] = {}
    for column, metric in _METRIC_KEYS.items():
        per_alpha = metric not in ("A_nat", "A_rob")
        interval = None if unc is None or (per_alpha and alpha is None) else unc.interval(metric, alpha if per_alpha else None)
        out[column + LO], out[column + HI] = interval if interval is not None else (None, None)
    return out


def with_interval_columns(columns: Sequence[str]) -> list[str]:
    """``columns`` with METRIC_lo, METRIC_hi right after each metric column."""
    out = []
    for column in columns:
        out.append(column)
        if column in _METRIC_KEYS:
            out += [column + LO, column + HI]
    return out


def build_table(summaries: Sequence[Summary], layout: Layout, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of ``summaries`` in ``layout``, in the order given. ``names`` fill the Model column
    (the leaderboard names a result by its folder); by default a result is named by its run.
    Each metric has its interval beside it (METRIC_lo, METRIC_hi; empty for a summary without)."""
    names = list(names) if names is not None else [None] * len(summaries)
    rows = []
    for summary, name in zip(summaries, names, strict=True):
        for row in _rows(summary, name, layout.per_alpha):
            alpha = row["alpha_test"] if layout.per_alpha else None
            rows.append({**row, **_interval_cells(summary, alpha)})
    columns = with_interval_columns(layout.columns)
    return pd.DataFrame(rows, columns=columns).astype({c: "float64" for c in columns if c.endswith((LO, HI))})


def result_table(summaries: Sequence[Summary]) -> pd.DataFrame:
    """The per-result table ``evaluate`` and ``demo`` print (A_nat beside the paper's metrics)."""
    return build_table(summaries, RESULT)


def seed_spread_table(summary: Summary) -> pd.DataFrame | None:
    """``evaluate --seeds``: per metric (A_nat, A_rob, A_sa@a, A_tr@a, A_wc@a) its value under each
    seed, and min, max, mean and std (ddof 1) over the seeds; None for a result of one seed."""
    spread = summary.seed_spread
    if spread is None:
        return None
    per_seed = {seed: metric_values(spread.metrics[str(seed)]) for seed in spread.seeds}
    rows = []
    for name, stats in spread.spread.items():
        row: dict[str, Any] = {"Metric": name}
        # Text with two decimals, as every accuracy is printed (100.00, not 100).
        row.update({f"seed {seed}": f"{values[name]:.2f}" for seed, values in per_seed.items() if name in values})
        row.update({key: f"{value:.2f}" for key, value in stats.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def sort_rows(frame: pd.DataFrame, sort_by: str | None = None) -> pd.DataFrame:
    """Rows in (data set, model, alpha_test) order, then stably by ``sort_by`` WITHIN each data set
    and alpha_test: an accuracy on MNIST is not ranked against one on CIFAR-10, nor A_tr at alpha 1
    against A_tr at alpha 2."""
    keys = [c for c in ("Dataset", "Model", "alpha_test") if c in frame.columns]
    frame = frame.sort_values(keys, kind="mergesort", na_position="last", key=_sort_key).reset_index(drop=True)
    if sort_by is not None and sort_by in frame.columns:
        groups = [c for c in ("Dataset", "alpha_test") if c in frame.columns and c != sort_by]
        # Accuracies best first; names and alphas in increasing order. Missing values last.
        frame = frame.sort_values([*groups, sort_by], ascending=[True] * len(groups) + [not sort_by.startswith(METRIC_COLUMNS)],
                                  kind="mergesort", na_position="last", key=_sort_key).reset_index(drop=True)
    return frame


# Descriptive columns a terminal view also states once when every row holds the same value (the
# intervals beside each number need the room); Model and alpha_test always stay.
FOLDED_WHEN_CONSTANT = ("Dataset", "Defense", "1/lambda", "alpha_train", "audit")


# How a protocol setting reads inside the terminal's one "Protocol" column (value alone where the
# value names itself: PGD, Linf, weighted, fp32).
_SHORT = {"eps": "eps {}", "Steps": "{} steps", "Step size": "step {}", "Restarts": "{} restarts", "Examples": "n {}"}
PROTOCOL = "Protocol"


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def terminal_view(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The table for a terminal (about 120 columns): each protocol column that holds one value on
    every row is left out and said once (the second return value, for the title); the protocol
    columns that differ between rows are folded into one ``Protocol`` cell per row (``APGD-CE,
    n 100``), so no row is read under another row's protocol. Files keep every column."""
    same = [c for c in (*FOLDED_WHEN_CONSTANT, *PROTOCOL_COLUMNS)
            if c in frame.columns and len(frame) and frame[c].astype("string").nunique(dropna=False) == 1]
    differ = [c for c in PROTOCOL_COLUMNS if c in frame.columns and c not in same]
    shown = frame.drop(columns=same)
    if differ:
        cells = [", ".join(_SHORT.get(c, "{}").format(_text(row[c])) for c in differ if _text(row[c]) != "-")
                 for _, row in frame.iterrows()]
        shown = shown.drop(columns=differ)
        shown[PROTOCOL] = cells
    said = ", ".join(f"{c} {_text(frame[c].iloc[0])}" for c in same)
    parts = ([f"every row: {said}"] if same else []) + ([f"Protocol: {', '.join(differ)}"] if differ else [])
    return shown, "; ".join(parts)


def _sort_key(series: pd.Series) -> pd.Series:
    # Mixed None/str columns cannot be compared: sort text as text, numbers as numbers.
    if not pd.api.types.is_numeric_dtype(series):
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() == series.notna().sum():
            return numeric
        return series.astype("string")
    return series


def resolve_sort_column(sort_by: str | None, kinds: Sequence[TableKind]) -> str | None:
    """The column ``--sort-by`` names (case-insensitive), or one line listing the columns."""
    if sort_by is None:
        return None
    columns = list(dict.fromkeys(c for k in kinds for c in LAYOUTS[k].columns))
    for column in columns:
        if column.lower() == sort_by.lower():
            return column
    raise WmrbenchError(f"{setting('sort_by', repr(sort_by))} is not a column; choose one of: {', '.join(columns)}")
