"""Per-example records: the columns every metric is recomputed from.

One row per evaluated example: ``index`` (position in the test split), ``label``, then for the
clean input, the unweighted PGD attack and each weighted attack (alpha_test = a) whether the
model was correct and its margin: ``clean_correct``, ``clean_margin``, ``pgd_correct``,
``pgd_margin``, ``tr_correct@a``, ``tr_margin@a``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_text

TR_CORRECT = "tr_correct@"
TR_MARGIN = "tr_margin@"


def alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def tr_columns(alpha: float) -> tuple[str, str]:
    return TR_CORRECT + alpha_key(alpha), TR_MARGIN + alpha_key(alpha)


def tr_alphas(records: pd.DataFrame) -> list[float]:
    """The alpha_test values whose weighted-attack columns the records hold, in column order."""
    return [float(c[len(TR_CORRECT):]) for c in records.columns if c.startswith(TR_CORRECT)]


def to_csv_text(records: pd.DataFrame) -> str:
    # Margins are float64 copies of float32 values: repr round-trips them exactly.
    buffer = io.StringIO()
    records.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def write_records(path: str | Path, records: pd.DataFrame) -> Path:
    return atomic_write_text(path, to_csv_text(records))


def read_records(path: str | Path) -> pd.DataFrame:
    try:
        records = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise WmrbenchError(f"cannot read records {path}: {exc}") from None
    missing = {"index", "label", "clean_correct", "pgd_correct", "pgd_margin"} - set(records.columns)
    if missing:
        raise WmrbenchError(f"{path} is not a wmrbench records file (missing {', '.join(sorted(missing))})")
    return records
