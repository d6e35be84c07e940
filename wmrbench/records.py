"""Per-example records and the typed result schema (``Summary``, ``ModelInfo``, ``Metrics``).

Records: one row per evaluated example, ``index`` (position in the split), ``label``, then for
the clean input, the unweighted PGD attack and each weighted attack (alpha_test = a) whether the
model was correct and its margin: ``clean_correct``, ``clean_margin``, ``pgd_correct``,
``pgd_margin``, ``tr_correct@a``, ``tr_margin@a``, and which restart each attack kept
(``pgd_restart``, ``tr_restart@a``, 0-based). Every metric is recomputed from them.

A result folder holds ``records.csv`` and ``summary.json``; the summary, written last, is the
marker of a complete result, and holds ``records_sha256``, the SHA-256 of the records file it
was computed from. :func:`read_summary` checks it: records.csv from another write (a kill or a
full disk between the two files, a second writer) never passes for this summary's records.
(Summaries written before the field existed carry no hash and are read as they are.) Its JSON
carries ``schema`` (the version of this layout): a file that does not parse as a Summary is
named and skipped by the readers, never guessed at.

While ``evaluate`` runs, the folder also holds ``.partial/`` (the batches finished so far and a
manifest; :mod:`wmrbench.evaluation.partial` writes and resumes it). A folder holding it and no
summary.json is an unfinished result: :func:`unfinished` says so, for the readers to skip it.
(It lives here, with the rest of the folder's layout, so that reports need not import the
evaluation pipeline.)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wmrbench.config import EvalConfig, eval_config_from_dict, number_key, to_jsonable
from wmrbench.errors import WmrbenchError
from wmrbench.io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
TR_CORRECT = "tr_correct@"
TR_MARGIN = "tr_margin@"
TR_RESTART = "tr_restart@"
REQUIRED_COLUMNS = ("index", "label", "clean_correct", "pgd_correct", "pgd_margin")
RECORDS_NAME, SUMMARY_NAME = "records.csv", "summary.json"
PARTIAL_DIR, MANIFEST_NAME = ".partial", "manifest.json"
BATCH_FILE = re.compile(r"batch-(\d+)\.pt")  # batch-000003.pt: the records of global batch 3


def alpha_key(alpha: float) -> str:
    """How an alpha names a column and a metrics key: 1.0 -> '1', 1.5 -> '1.5', and distinct
    alphas always distinct names (0.1 -> '0.1', 0.10000000001 -> '0.10000000001';
    :func:`wmrbench.config.number_key`)."""
    return number_key(alpha)


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


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_records(path: str | Path) -> pd.DataFrame:
    try:
        records = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise WmrbenchError(f"cannot read records {path}: {exc}") from None
    missing = set(REQUIRED_COLUMNS) - set(records.columns)
    if missing:
        raise WmrbenchError(f"{path} is not a wmrbench records file (missing {', '.join(sorted(missing))})")
    _check_column_names(path)
    return records


def _check_column_names(path: str | Path) -> None:
    """No column twice (pandas would rename the second 'tr_correct_1' to 'tr_correct_1.1', an
    alpha of 1.1), and no alpha under two spellings ('tr_correct_1' and 'tr_correct_1.0')."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WmrbenchError(f"cannot read records {path}: {exc}") from None
    seen: dict[tuple[str, float] | str, str] = {}
    for name in header:
        key: tuple[str, float] | str = name
        for prefix in (TR_CORRECT, TR_MARGIN, TR_RESTART):
            if name.startswith(prefix):
                with contextlib.suppress(ValueError):
                    key = (prefix, float(name[len(prefix):]))
                break
        if key in seen:
            same = f"the column {name!r} twice" if seen[key] == name else f"the columns {seen[key]!r} and {name!r} for one alpha"
            raise WmrbenchError(f"{path} is not a valid records file: it has {same}")
        seen[key] = name


# --- the typed result schema -------------------------------------------------------------------


def _optional_float(value: Any, name: str = "value") -> float | None:
    """None, or a finite number (a string such as "two" or "2", a bool, NaN: ValueError)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} is {value!r}, not a finite number")
    return float(value)


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is {value!r}, not a string")
    return value


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
        for name in ("arch", "defense", "checkpoint", "model_id", "threat_model", "model_dir", "factory"):
            values[name] = _optional_str(values.get(name), f"model.{name}")
        values["alpha_train"] = _optional_float(values.get("alpha_train"), "model.alpha_train")
        values["beta"] = _optional_float(values.get("beta"), "model.beta")
        if values["alpha_train"] is not None and values["alpha_train"] < 0:
            raise ValueError(f"model.alpha_train is {values['alpha_train']!r}, not >= 0")
        train_config = values.get("train_config") or {}
        if not isinstance(train_config, dict):
            raise ValueError("model.train_config is not an object")
        values["train_config"] = dict(train_config)
        for key in ("mean", "std"):
            if values.get(key) is not None:
                stats = values[key]
                if not isinstance(stats, (list, tuple)) or not stats:
                    raise ValueError(f"model.{key} is not a list of numbers")
                values[key] = tuple(_optional_float(v, f"model.{key}") for v in stats)
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
            out = {}
            for k, v in table.items():
                try:
                    alpha = float(k)
                except ValueError:
                    raise ValueError(f"metrics.{name} has the key {k!r}, not an alpha") from None
                if not (math.isfinite(alpha) and alpha >= 0):
                    raise ValueError(f"metrics.{name} has the key {k!r}, not an alpha >= 0")
                key = alpha_key(alpha)
                if key in out:  # '1' and '1.0': one alpha twice; never let one silently replace the other
                    first = next(j for j in table if j != k and float(j) == alpha)
                    raise ValueError(f"metrics.{name} has the keys {first!r} and {k!r} for one alpha {key}")
                out[key] = number(v, f"{name}[{k}]")
            return out

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
    records_sha256: str | None = None  # of the records.csv this summary was computed from
    schema: int = SCHEMA_VERSION

    @property
    def dataset(self) -> str:
        return self.config.dataset.value

    def to_json(self) -> dict[str, Any]:
        out = to_jsonable(self)
        for optional in ("adversarial", "records_sha256"):
            if out[optional] is None:
                del out[optional]
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
        records_sha256 = d.get("records_sha256")
        if records_sha256 is not None and not (isinstance(records_sha256, str) and len(records_sha256) == 64):
            raise ValueError(f"records_sha256 is {records_sha256!r}, not a SHA-256")
        run = d.get("run", "")
        if not isinstance(run, str):
            raise ValueError(f"run is {run!r}, not a name")
        versions = d.get("versions") or {}
        if not isinstance(versions, dict):
            raise ValueError("versions is not an object")
        return cls(
            run=run, model=ModelInfo.from_json(d.get("model")), config=config,
            metrics=Metrics.from_json(d.get("metrics")), seconds=float(d.get("seconds", 0.0)),
            processes=int(d.get("processes", 1)), versions=dict(versions),
            adversarial=AdversarialOrigin(**adversarial) if isinstance(adversarial, dict) else None,
            records_sha256=records_sha256,
        )


def write_summary(path: str | Path, summary: Summary) -> Path:
    return atomic_write_json(path, summary.to_json())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_summary(path: str | Path, check_records: bool = True) -> Summary:
    """A summary.json, or one line naming the file and what is wrong with it.

    ``check_records``: when the summary holds the hash of its records and records.csv is
    beside it, the two must match (a summary copied without its records is still read).
    """
    path = Path(path)
    try:
        # NaN and Infinity are not JSON: a file holding them was not written by wmrbench.
        obj = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise WmrbenchError(f"{path}: not valid JSON ({type(exc).__name__}: {first})") from None
    try:
        summary = Summary.from_json(obj)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WmrbenchError(f"{path}: not a wmrbench summary ({exc})") from None
    records = path.parent / RECORDS_NAME
    if check_records and summary.records_sha256 is not None and records.is_file():
        try:
            actual = sha256_file(records)
        except OSError as exc:
            raise WmrbenchError(f"{path}: cannot read {records} ({exc.strerror or exc})") from None
        if actual != summary.records_sha256:
            raise WmrbenchError(
                f"{path}: {records.name} beside it is not the one it was computed from (SHA-256 differs): "
                "an interrupted or concurrent write, or an edited file; evaluate again with --overwrite"
            )
    return summary


# --- an unfinished result (written by wmrbench.evaluation.partial) -------------------------------


def saved_batches(folder: str | Path) -> list[int]:
    """The numbers of the batches saved in ``folder``'s ``.partial/``, sorted."""
    where = Path(folder) / PARTIAL_DIR
    if not where.is_dir():
        return []
    return sorted(int(m.group(1)) for p in where.iterdir() if (m := BATCH_FILE.fullmatch(p.name)))


def has_partial(folder: str | Path) -> bool:
    """``folder`` holds saved batches of an evaluation (a ``.partial/`` that is not empty)."""
    where = Path(folder) / PARTIAL_DIR
    return where.is_dir() and any(where.iterdir())


def partial_progress(folder: str | Path) -> str:
    """``3 of 10 batches done`` (without the total when the manifest cannot be read)."""
    done = len(saved_batches(folder))
    total = _manifest_fields(folder).get("n_batches")
    return f"{done} of {total} batches done" if isinstance(total, int) else f"{done} batches done"


def _manifest_fields(folder: str | Path) -> dict[str, Any]:
    """The manifest's JSON, or {} if it cannot be read: only what messages need is taken from it."""
    try:
        obj = json.loads((Path(folder) / PARTIAL_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


@dataclass(frozen=True)
class Unfinished:
    """A results folder with saved batches and no summary.json: an evaluation that was stopped."""

    folder: Path
    progress: str  # "3 of 10 batches done"
    command: str  # what finishes it


def unfinished(folder: str | Path) -> Unfinished | None:
    """``folder``'s unfinished evaluation, if it holds one and no complete result."""
    folder = Path(folder)
    if (folder / SUMMARY_NAME).exists() or not has_partial(folder):
        return None
    command = _manifest_fields(folder).get("resume_command")
    if not isinstance(command, str) or not command:
        command = f"wmrbench evaluate ... --run {folder.name} --resume"
    return Unfinished(folder, partial_progress(folder), command)
