"""Per-example records and the typed result schema (``Summary``, ``ModelInfo``, ``Metrics``).

Records: one row per evaluated example, ``index`` (position in the split), ``label``, then for
the clean input, the unweighted PGD attack and each weighted attack (alpha_test = a) whether the
model was correct and its margin: ``clean_correct``, ``clean_margin``, ``pgd_correct``,
``pgd_margin``, ``tr_correct@a``, ``tr_margin@a``, and which restart each attack kept
(``pgd_restart``, ``tr_restart@a``, 0-based). Every metric is recomputed from them.

A result folder holds ``records.csv`` and ``summary.json``; the summary, written last, is the
marker of a complete result. Its JSON carries ``schema`` (the version of this layout): a file
that does not parse as a Summary is named and skipped by the readers, never guessed at.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.config import EvalConfig, eval_config_from_dict, to_jsonable
from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
TR_CORRECT = "tr_correct@"
TR_MARGIN = "tr_margin@"
TR_RESTART = "tr_restart@"
REQUIRED_COLUMNS = ("index", "label", "clean_correct", "pgd_correct", "pgd_margin")


def alpha_key(alpha: float) -> str:
    """How an alpha names a column and a metrics key: 1.0 -> '1', 1.5 -> '1.5'."""
    return f"{alpha:g}"


def tr_columns(alpha: float) -> tuple[str, str]:
    return TR_CORRECT + alpha_key(alpha), TR_MARGIN + alpha_key(alpha)


def tr_restart_column(alpha: float) -> str:
    """Which restart the weighted attack at ``alpha`` kept for each example (0-based)."""
    return TR_RESTART + alpha_key(alpha)


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
    missing = set(REQUIRED_COLUMNS) - set(records.columns)
    if missing:
        raise WmrbenchError(f"{path} is not a wmrbench records file (missing {', '.join(sorted(missing))})")
    return records


# --- the typed result schema -------------------------------------------------------------------


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ModelInfo:
    """What was evaluated: where the model came from and, for wmrbench checkpoints, how it was
    trained (defense, alpha_train and beta feed the paper's Defense / 1/lambda columns)."""

    name: str  # the result's run name
    source: str  # checkpoint | robustbench | factory
    arch: str | None = None
    defense: str | None = None  # pgd | trades for wmrbench checkpoints; None when unknown
    alpha_train: float | None = None
    beta: float | None = None  # TRADES' 1/lambda; None for PGD-AT and unknown models
    checkpoint: str | None = None
    model_id: str | None = None
    threat_model: str | None = None
    model_dir: str | None = None
    factory: str | None = None
    train_config: dict[str, Any] = field(default_factory=dict)  # the checkpoint's, as saved
    mean: tuple[float, ...] | None = None  # --mean / --std: the normalization wrapped around it
    std: tuple[float, ...] | None = None

    @classmethod
    def from_json(cls, d: Any) -> ModelInfo:
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("source"), str):
            raise ValueError("no model name and source")
        values = {f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name in d}
        values["alpha_train"] = _optional_float(values.get("alpha_train"))
        values["beta"] = _optional_float(values.get("beta"))
        values["train_config"] = dict(values.get("train_config") or {})
        for key in ("mean", "std"):
            values[key] = None if values.get(key) is None else tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True)
class Metrics:
    """A_nat, A_rob (percent) and, per alpha_test (keyed by :func:`alpha_key`), A_sa and A_tr, and
    A_wc, wmrbench's worst-case non-uniform accuracy (not the paper's; :mod:`wmrbench.metrics`)."""

    n_examples: int
    A_nat: float
    A_rob: float
    A_sa: dict[str, float]
    A_tr: dict[str, float]
    A_wc: dict[str, float] = field(default_factory=dict)  # results written before it: empty

    @property
    def alphas(self) -> list[float]:
        return [float(key) for key in self.A_sa]

    @classmethod
    def from_json(cls, d: Any) -> Metrics:
        if not isinstance(d, dict):
            raise ValueError("no metrics object")

        def number(value: Any, name: str) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"metrics.{name} is not a finite number")
            return float(value)

        def per_alpha(name: str, optional: bool = False) -> dict[str, float]:
            table = d.get(name, {} if optional else None)
            if not isinstance(table, dict):
                raise ValueError(f"no metrics.{name} object")
            return {alpha_key(float(k)): number(v, f"{name}[{k}]") for k, v in table.items()}

        return cls(int(number(d.get("n_examples"), "n_examples")), number(d.get("A_nat"), "A_nat"),
                   number(d.get("A_rob"), "A_rob"), per_alpha("A_sa"), per_alpha("A_tr"), per_alpha("A_wc", True))


@dataclass(frozen=True)
class AdversarialOrigin:
    """For a result scored from saved points (``evaluate --adversarial``): where they came from."""

    file: str
    split: str
    attacked: dict[str, Any]  # the model source the points were crafted on, as recorded


@dataclass(frozen=True)
class Summary:
    """One complete result: ``results/<run>/summary.json``."""

    run: str
    model: ModelInfo
    config: EvalConfig
    metrics: Metrics
    seconds: float
    processes: int
    versions: dict[str, Any]
    adversarial: AdversarialOrigin | None = None
    schema: int = SCHEMA_VERSION

    @property
    def dataset(self) -> str:
        return self.config.dataset.value

    def to_json(self) -> dict[str, Any]:
        out = to_jsonable(self)
        if self.adversarial is None:
            del out["adversarial"]
        return out

    @classmethod
    def from_json(cls, d: Any) -> Summary:
        """Parse a summary; anything that is not one raises ValueError saying why."""
        if not isinstance(d, dict):
            raise ValueError(f"a JSON {type(d).__name__}, not an object")
        schema = d.get("schema", SCHEMA_VERSION)  # files written before the field existed are v1
        if schema != SCHEMA_VERSION:
            raise ValueError(f"schema {schema!r}; this wmrbench reads schema {SCHEMA_VERSION}")
        try:
            config = eval_config_from_dict(d.get("config"))
        except WmrbenchError as exc:
            raise ValueError(str(exc)) from None
        adversarial = d.get("adversarial")
        return cls(
            run=str(d.get("run", "")), model=ModelInfo.from_json(d.get("model")), config=config,
            metrics=Metrics.from_json(d.get("metrics")), seconds=float(d.get("seconds", 0.0)),
            processes=int(d.get("processes", 1)), versions=dict(d.get("versions") or {}),
            adversarial=AdversarialOrigin(**adversarial) if isinstance(adversarial, dict) else None,
        )


def write_summary(path: str | Path, summary: Summary) -> Path:
    return atomic_write_json(path, summary.to_json())


def read_summary(path: str | Path) -> Summary:
    """A summary.json, or one line naming the file and what is wrong with it."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WmrbenchError(f"{path}: not valid JSON ({type(exc).__name__}: {first})") from None
    try:
        return Summary.from_json(obj)
    except (ValueError, TypeError, KeyError) as exc:
        raise WmrbenchError(f"{path}: not a wmrbench summary ({exc})") from None
