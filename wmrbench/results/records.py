"""Per-example records and the typed result schema (``Summary``, ``ModelInfo``, ``Metrics``).

Records: one row per evaluated example, ``index`` (position in the split), ``label``, then for
the clean input, the unweighted PGD attack and each weighted attack (alpha_test = a) whether the
model was correct and its margin: ``clean_correct``, ``clean_margin``, ``pgd_correct``,
``pgd_margin``, ``tr_correct@a``, ``tr_margin@a``, and which restart each attack kept
(``pgd_restart``, ``tr_restart@a``, 0-based). Every metric is recomputed from them.
Under ``restart_rule`` max-ce (the authors' choice among restarts) the same attack run also
records what wmrbench's weighted rule keeps among the same restarts, in the same columns
prefixed ``weighted_rule.`` (:func:`under_weighted_rule` turns them into records of their own).

A result folder holds ``records.csv`` and ``summary.json``; the summary, written last, is the
marker of a complete result, and holds ``records_sha256``, the SHA-256 of the records file it
was computed from. :func:`read_summary` checks it: records.csv from another write (a kill or a
full disk between the two files, a second writer) never passes for this summary's records.
(Summaries written before the field existed carry no hash and are read as they are.) Its JSON
carries ``schema`` (the version of this layout): a file that does not parse as a Summary is
named and skipped by the readers, never guessed at. Schema 2 adds ``uncertainty`` (every metric's
95% bootstrap interval and n_eff, :mod:`wmrbench.results.uncertainty`); schema 1 files are still read,
and readers compute their intervals from the records beside them.

While ``evaluate`` runs, the folder also holds ``.partial/`` (the batches finished so far and a
manifest). Its layout has one home, :mod:`wmrbench.evaluation.partial`, which writes, reads and
resumes it, and says which folders hold an unfinished result (``unfinished``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wmrbench.core.config import EvalConfig, eval_config_from_dict, metric_label, number_from_key, number_key, to_jsonable
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.core.io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 2  # 2: the optional ``uncertainty`` object (intervals and n_eff)
READABLE_SCHEMAS = (1, 2)  # v1 summaries carry no intervals: readers compute them from records.csv
TR_CORRECT = "tr_correct@"
TR_MARGIN = "tr_margin@"
TR_RESTART = "tr_restart@"
WEIGHTED_RULE = "weighted_rule."  # prefix of the weighted rule's pick, recorded beside a max-ce run's
REQUIRED_COLUMNS = ("index", "label", "clean_correct", "pgd_correct", "pgd_margin")
RECORDS_NAME, SUMMARY_NAME = "records.csv", "summary.json"


def tr_columns(alpha: float) -> tuple[str, str]:
    """The weighted attack's columns at ``alpha``: 1.0 -> 'tr_correct@1', 1.5 -> 'tr_correct@1.5';
    distinct alphas always get distinct names (:func:`wmrbench.core.config.number_key`)."""
    return TR_CORRECT + number_key(alpha), TR_MARGIN + number_key(alpha)


def tr_restart_column(alpha: float) -> str:
    """Which restart the weighted attack at ``alpha`` kept for each example (0-based)."""
    return TR_RESTART + number_key(alpha)


def under_weighted_rule(records: pd.DataFrame) -> pd.DataFrame | None:
    """The records as the weighted restart rule would have written them, from the
    ``weighted_rule.`` columns a max-ce run records beside its own (None when it has none)."""
    picked = {c[len(WEIGHTED_RULE):]: records[c] for c in records.columns if c.startswith(WEIGHTED_RULE)}
    if not picked:
        return None
    out = records.drop(columns=[c for c in records.columns if c.startswith(WEIGHTED_RULE)])
    for column, values in picked.items():
        out[column] = values
    return out


def tr_alphas(records: pd.DataFrame) -> list[float]:
    """The alpha_test values whose weighted-attack columns the records hold, in column order: the
    one place a column's name is read back as a number (:func:`tr_columns` makes the names)."""
    return [number_from_key(c[len(TR_CORRECT):]) for c in records.columns if c.startswith(TR_CORRECT)]


def attack_column_pairs(records: pd.DataFrame) -> list[tuple[str, str]]:
    """(correct, margin) columns of every attack the records hold: the unweighted PGD's, then each
    weighted attack's in column order (the weighted rule's copies are not among them)."""
    return [("pgd_correct", "pgd_margin"), *(tr_columns(alpha) for alpha in tr_alphas(records))]


def is_margin_column(name: str) -> bool:
    """Whether a column holds margins: the clean and PGD ones, each weighted attack's, and the
    weighted rule's copies of them (``weighted_rule.tr_margin@2``)."""
    name = name.removeprefix(WEIGHTED_RULE)
    return name.endswith("_margin") or name.startswith(TR_MARGIN)


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
    check_records(records, str(path))
    return records


def _margin_of(column: str) -> str | None:
    """The margin column that goes with a correctness column (its weighted_rule. twin too)."""
    rule = WEIGHTED_RULE if column.startswith(WEIGHTED_RULE) else ""
    base = column[len(rule):]
    if base in ("clean_correct", "pgd_correct"):
        return rule + base.replace("_correct", "_margin")
    if base.startswith(TR_CORRECT):
        return rule + TR_MARGIN + base[len(TR_CORRECT):]
    return None


def _row(records: pd.DataFrame, position: int) -> str:
    """A row as a user finds it: its line in the file (the header is line 1) and its example."""
    index = pd.to_numeric(pd.Series([records["index"].iloc[position]]), errors="coerce").iloc[0]
    example = f", example {int(index)}" if np.isfinite(index) and float(index).is_integer() else ""
    return f"line {position + 2}{example}"


def check_records(records: pd.DataFrame, where: str) -> None:
    """Records that are consistent with themselves, or one line naming the first fault.

    Every reader (compare, the reports, the intervals) goes through here, so that a truncated
    file (its last row half written: missing values) or an edited one (a row counted correct
    with a negative margin) is never averaged into a number. The checks are what the evaluation
    itself guarantees: every value present and finite, correctness 0 or 1, correct exactly where
    the margin says so (> 0 correct, < 0 wrong, 0 a tie), and distinct integer example indices
    and labels.
    """
    bad = f"{where} is damaged (truncated or edited?)"
    if len(records) == 0:
        raise WmrbenchError(f"{bad}: it holds no examples")
    correct = [c for c in records.columns if _margin_of(c) is not None]
    margins = [m for c in correct if (m := _margin_of(c)) in records.columns]
    numeric = ["index", "label", *correct, *margins]
    for column in numeric:
        values = pd.to_numeric(records[column].replace({True: 1, False: 0}), errors="coerce").to_numpy(dtype=np.float64)
        missing = ~np.isfinite(values)
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raw = records[column].iloc[first]
            raise WmrbenchError(f"{bad}: {_row(records, first)} has no valid {column} "
                                f"({'an empty cell' if pd.isna(raw) else repr(str(raw))})")
        if column in ("index", "label") and not (np.all(values == np.round(values)) and values.min() >= 0):
            first = int(np.flatnonzero((values != np.round(values)) | (values < 0))[0])
            raise WmrbenchError(f"{bad}: {_row(records, first)} has {column} {values[first]:g}, not an integer >= 0")
        if column in correct and not np.isin(values, (0.0, 1.0)).all():
            first = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0])
            raise WmrbenchError(f"{bad}: {_row(records, first)} has {column} {values[first]:g}, not 0 or 1")
    index = records["index"].to_numpy()
    if len(np.unique(index)) != len(index):
        raise WmrbenchError(f"{bad}: example {int(index[pd.Series(index).duplicated().to_numpy()][0])} is recorded twice")
    for column in correct:
        margin = _margin_of(column)
        if margin not in records.columns:
            continue
        right = records[column].astype(float).to_numpy()
        value = records[margin].to_numpy(dtype=np.float64)
        wrong = ((right == 1) & (value < 0)) | ((right == 0) & (value > 0))
        if wrong.any():
            first = int(np.flatnonzero(wrong)[0])
            raise WmrbenchError(f"{bad}: {_row(records, first)} has {column} {int(right[first])} with {margin} "
                                f"{value[first]:g} (correct exactly where the margin is > 0)")


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
                    key = (prefix, number_from_key(name[len(prefix):]))
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


PYTHON_SOURCE = "python"  # a model object handed to wmrbench.evaluate: nothing can load it again


@dataclass(frozen=True)
class ModelInfo:
    """What was evaluated: where the model came from and, for wmrbench checkpoints, how it was
    trained (defense, alpha_train and beta feed the paper's Defense / 1/lambda columns)."""

    name: str  # the result's run name
    source: str  # checkpoint | robustbench | factory | python (PYTHON_SOURCE)
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
    """A_nat, A_rob (percent) and, per alpha_test (keyed by the alpha itself, a float), A_sa and
    A_tr, and A_wc, wmrbench's worst-case non-uniform accuracy (not the paper's;
    :mod:`wmrbench.results.metrics`). In summary.json the keys are the alphas' names ('2', '1.5';
    :func:`wmrbench.core.config.number_key`): :meth:`to_json` and :meth:`from_json` convert."""

    n_examples: int
    A_nat: float
    A_rob: float
    A_sa: dict[float, float]
    A_tr: dict[float, float]
    A_wc: dict[float, float] = field(default_factory=dict)  # results written before it: empty

    @property
    def alphas(self) -> list[float]:
        """The alpha_test values, in the order they were evaluated."""
        return list(self.A_sa)

    def to_json(self) -> dict[str, Any]:
        """As summary.json holds it: every alpha key by its name."""
        return to_jsonable(self)

    @classmethod
    def from_json(cls, d: Any) -> Metrics:
        if not isinstance(d, dict):
            raise ValueError("no metrics object")

        def number(value: Any, name: str) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"metrics.{name} is not a finite number")
            return float(value)

        def per_alpha(name: str, optional: bool = False) -> dict[float, float]:
            table = d.get(name, {} if optional else None)
            if not isinstance(table, dict):
                raise ValueError(f"no metrics.{name} object")
            out: dict[float, float] = {}
            for k, v in table.items():
                alpha = _alpha_of(k, f"metrics.{name}")
                if alpha in out:  # '1' and '1.0': one alpha twice; never let one silently replace the other
                    first = next(j for j in table if j != k and _alpha_of(j, f"metrics.{name}") == alpha)
                    raise ValueError(f"metrics.{name} has the keys {first!r} and {k!r} for one alpha {number_key(alpha)}")
                out[alpha] = number(v, f"{name}[{k}]")
            return out

        return cls(int(number(d.get("n_examples"), "n_examples")), number(d.get("A_nat"), "A_nat"),
                   number(d.get("A_rob"), "A_rob"), per_alpha("A_sa"), per_alpha("A_tr"), per_alpha("A_wc", True))


def _alpha_of(key: Any, where: str) -> float:
    """A JSON object's key read back as the alpha_test it names (ValueError naming it if not one)."""
    try:
        alpha = number_from_key(key)
    except ValueError:
        raise ValueError(f"{where} has the key {key!r}, not an alpha") from None
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"{where} has the key {key!r}, not an alpha >= 0")
    return alpha


Interval = tuple[float, float]


@dataclass(frozen=True)
class Uncertainty:
    """How sure each metric is (:mod:`wmrbench.results.uncertainty` computes it from the records).

    ``intervals``: ``A_nat`` and ``A_rob`` -> (lo, hi); ``A_sa``, ``A_tr``, ``A_wc`` -> alpha (a
    float) -> (lo, hi), in percent. ``n_eff``: ``A_sa``, ``A_tr``, ``A_wc`` -> alpha -> the effective
    sample size ``(sum s)^2 / sum s^2`` of that metric's weights. The interval covers the sampling
    of test examples for a fixed attack, not the attack's own randomness.
    """

    method: str  # "percentile bootstrap over examples"
    level: float  # 0.95
    resamples: int
    seed: int
    intervals: dict[str, Any]
    n_eff: dict[str, dict[float, float]]

    def interval(self, metric: str, alpha: float | None = None) -> Interval | None:
        value = self.intervals.get(metric)
        if alpha is not None:
            value = value.get(alpha) if isinstance(value, dict) else None
        return (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) and len(value) == 2 else None

    @classmethod
    def from_json(cls, d: Any) -> Uncertainty:
        if not isinstance(d, dict):
            raise ValueError("uncertainty is not an object")

        def pair(value: Any, name: str) -> Interval:
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"uncertainty.intervals.{name} is not a [lo, hi] pair")
            lo, hi = (_optional_float(v, f"uncertainty.intervals.{name}") for v in value)
            if lo is None or hi is None or lo > hi:
                raise ValueError(f"uncertainty.intervals.{name} is not a [lo, hi] pair")
            return (lo, hi)

        raw = d.get("intervals")
        if not isinstance(raw, dict):
            raise ValueError("no uncertainty.intervals object")
        intervals: dict[str, Any] = {}
        for metric, value in raw.items():
            if isinstance(value, dict):
                intervals[metric] = {_alpha_of(k, f"uncertainty.intervals.{metric}"): pair(v, f"{metric}[{k}]")
                                     for k, v in value.items()}
            else:
                intervals[metric] = pair(value, metric)
        raw_neff = d.get("n_eff", {})
        if not isinstance(raw_neff, dict) or not all(isinstance(v, dict) for v in raw_neff.values()):
            raise ValueError("uncertainty.n_eff is not an object of objects")
        n_eff = {m: {_alpha_of(k, f"uncertainty.n_eff.{m}"): float(_optional_float(v, f"uncertainty.n_eff.{m}") or 0.0)
                     for k, v in t.items()} for m, t in raw_neff.items()}
        level = _optional_float(d.get("level"), "uncertainty.level")
        if level is None or not 0 < level < 1:
            raise ValueError("uncertainty.level is not in (0, 1)")
        resamples, seed = d.get("resamples"), d.get("seed")
        if not isinstance(resamples, int) or isinstance(resamples, bool) or resamples < 1:
            raise ValueError("uncertainty.resamples is not a positive whole number")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError("uncertainty.seed is not a whole number")
        method = d.get("method")
        if not isinstance(method, str):
            raise ValueError("uncertainty.method is not a string")
        return cls(method, level, resamples, seed, intervals, n_eff)


@dataclass(frozen=True)
class AdversarialOrigin:
    """For a result scored from saved points (``evaluate --adversarial``): where they came from."""

    file: str
    split: str
    attacked: dict[str, Any]  # the model source the points were crafted on, as recorded


def seed_records_name(seed: int) -> str:
    """Where ``evaluate --seeds`` puts the records of a seed other than the result's own."""
    return f"records-seed{seed}.csv"


def metric_values(metrics: Metrics) -> dict[str, float]:
    """Every number of ``metrics`` by one flat name: A_nat, A_rob, A_sa@1, A_tr@1, A_wc@1, ..."""
    out = {"A_nat": metrics.A_nat, "A_rob": metrics.A_rob}
    for table in ("A_sa", "A_tr", "A_wc"):
        out.update({metric_label(table, alpha): value for alpha, value in getattr(metrics, table).items()})
    return out


@dataclass(frozen=True)
class SeedSpread:
    """``evaluate --seeds``: the attack repeated with other keyed starts on the same examples.

    ``seeds[0]`` is the result's own seed (its records are records.csv, its metrics the
    summary's); each other seed's records are :func:`seed_records_name` beside them, with their
    SHA-256 in ``records_sha256``. ``spread``: per metric (:func:`metric_values`' names) its
    min, max, mean and sample standard deviation (ddof 1) over the seeds. It measures the
    attack's own randomness, which an interval over test examples does not cover.
    """

    seeds: tuple[int, ...]
    metrics: dict[str, Metrics]  # by str(seed), every seed's (the first's equal the summary's)
    records_sha256: dict[str, str]  # by str(seed), for the seeds after the first
    spread: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        per_seed = [metric_values(self.metrics[str(seed)]) for seed in self.seeds]
        spread = {}
        for name in per_seed[0]:
            values = [m[name] for m in per_seed if name in m]
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
            spread[name] = {"min": min(values), "max": max(values), "mean": mean, "std": math.sqrt(var)}
        object.__setattr__(self, "spread", spread)  # always recomputed from the metrics, never read

    @classmethod
    def from_json(cls, d: Any) -> SeedSpread:
        if not isinstance(d, dict) or not isinstance(d.get("seeds"), list) or len(d["seeds"]) < 2:
            raise ValueError("seed_spread has no list of seeds")
        seeds = tuple(int(s) for s in d["seeds"])
        metrics, hashes = d.get("metrics"), d.get("records_sha256")
        if not isinstance(metrics, dict) or not isinstance(hashes, dict) or set(metrics) != {str(s) for s in seeds}:
            raise ValueError("seed_spread.metrics does not hold every seed")
        return cls(seeds, {k: Metrics.from_json(v) for k, v in metrics.items()}, {str(k): str(v) for k, v in hashes.items()})


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
    # Of the evaluated weights and examples (names, dtypes, shapes, bytes; as the .partial
    # manifest's): `rerun` says which of them changed when the numbers differ.
    model_sha256: str | None = None
    data_sha256: str | None = None
    schema: int = SCHEMA_VERSION
    # Intervals and n_eff (schema 2); None in a v1 summary: wmrbench.results.uncertainty.with_uncertainty
    # computes them from the records beside it.
    uncertainty: Uncertainty | None = None
    seed_spread: SeedSpread | None = None  # evaluate --seeds: the other seeds' metrics and their spread

    @property
    def dataset(self) -> str:
        return self.config.dataset.value if self.config.dataset is not None else ""  # "": examples from Python

    def to_json(self) -> dict[str, Any]:
        out = to_jsonable(self)
        for optional in ("adversarial", "records_sha256", "model_sha256", "data_sha256", "uncertainty", "seed_spread"):
            if out[optional] is None:
                del out[optional]
        return out

    @classmethod
    def from_json(cls, d: Any) -> Summary:
        """Parse a summary; anything that is not one raises ValueError saying why."""
        if not isinstance(d, dict):
            raise ValueError(f"a JSON {type(d).__name__}, not an object")
        schema = d.get("schema", 1)  # files written before the field existed are v1
        if schema not in READABLE_SCHEMAS:
            raise ValueError(f"schema {schema!r}; this wmrbench reads schema {', '.join(map(str, READABLE_SCHEMAS))}")
        try:
            config = eval_config_from_dict(d.get("config"))
        except WmrbenchError as exc:
            raise ValueError(str(exc)) from None
        adversarial = d.get("adversarial")
        records_sha256 = d.get("records_sha256")
        if records_sha256 is not None and not (isinstance(records_sha256, str) and len(records_sha256) == 64):
            raise ValueError(f"records_sha256 is {records_sha256!r}, not a SHA-256")
        hashes = {key: d.get(key) for key in ("model_sha256", "data_sha256")}
        for key, value in hashes.items():
            if value is not None and not (isinstance(value, str) and len(value) == 64):
                raise ValueError(f"{key} is {value!r}, not a SHA-256")
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
            records_sha256=records_sha256, schema=int(schema), **hashes,
            uncertainty=Uncertainty.from_json(d["uncertainty"]) if d.get("uncertainty") is not None else None,
            seed_spread=SeedSpread.from_json(d["seed_spread"]) if d.get("seed_spread") is not None else None,
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:  # nothing there is not a broken file: say so, not "not valid JSON"
        raise WmrbenchError(f"{path}: no such file (a result's summary is RESULTS_DIR/RUN/summary.json)") from None
    except IsADirectoryError:
        raise WmrbenchError(f"{path} is a folder; give the summary.json inside a result's folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WmrbenchError(f"{path}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    try:
        # NaN and Infinity are not JSON: a file holding them was not written by wmrbench.
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
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
                f"an interrupted or concurrent write, or an edited file; evaluate again with {setting('overwrite', True)}"
            )
    spread = summary.seed_spread
    for seed, digest in (spread.records_sha256.items() if check_records and spread is not None else ()):
        other = path.parent / seed_records_name(int(seed))
        if other.is_file() and sha256_file(other) != digest:
            raise WmrbenchError(f"{path}: {other.name} beside it is not the one its seed spread was computed from "
                                f"(SHA-256 differs); evaluate again with {setting('overwrite', True)}")
    return summary
