"""Groups of runs: the seeds of one method, summarised and compared with their own randomness.

A claim about a training method (a defense, "+ours", an alpha_train) rests on training runs as
well as on test examples: two seeds of one method differ by about as much as the gains reported
(docs/definitions.md, "Training runs"). Here a **run** is one result on the test examples:

- a result folder that ``wmrbench evaluate`` wrote for one checkpoint (a training seed:
  ``train --seeds 0,1,2`` names its runs ``<run>-s<seed>``), or
- one attack seed of an ``evaluate --seeds`` folder (``records.csv`` for the first seed,
  ``records-seed<k>.csv`` for the others): the attack's own randomness, handled the same way.

A **group** is several runs of one method: every setting the same but the seeds (a member that
differs in anything else is refused by name), all on the same test examples.

- :func:`group_summary`: per metric, the mean over runs, its two-level 95% interval
  (:func:`wmrbench.results.uncertainty.two_level`: runs resampled, then examples), the runs' spread (sd)
  and the share of one run's variance that is due to the run rather than to the test examples.
- :func:`compare_groups`: per metric, the difference of the means, its two-level interval, a test
  over runs (Student's paired t on the per-seed differences when the seeds pair up, Welch's t
  otherwise) and the probability of improvement (the share of run pairs, one from each group, in
  which A's run beats B's; Agarwal et al., "Deep Reinforcement Learning at the Edge of the
  Statistical Precipice", NeurIPS 2021). With one run on a side there is no test over runs, and
  the verdict says the interval covers the test examples only.

Why a t-test over runs and not the sign-flip permutation test: with 5 seeds its smallest
two-sided p-value is 2/32 = 0.0625, so it could never call a difference significant at 5%; the t
test's false-positive rate on simulated seed groups is measured in docs/definitions.md.

This module reads result files only (no attack, no evaluation): reports import it.
"""

from __future__ import annotations

import dataclasses
import glob
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wmrbench.results.comparison import (DEFAULT_ALPHAS, ONE_RUN, SIGNIFICANCE, STDOUT, CompareFormat, output_format, result_records,
                                 to_csv)
from wmrbench.core.config import EvalConfig, TrainConfig, metric_label, number_key
from wmrbench.core.errors import WmrbenchError, setting
from wmrbench.results.records import RECORDS_NAME, SUMMARY_NAME, ModelInfo, Summary, read_records, read_summary, seed_records_name, tr_alphas
from wmrbench.core.resume import resumable_settings, settings_of
from wmrbench.results.uncertainty import BootstrapConfig, percentile_interval, run_variance_share, same_examples, two_level

METHOD = "two-level bootstrap: runs, then examples (the same examples for every run)"
# Settings that may differ between the runs of one group: the seeds, and where things are.
_EVAL_FREE = resumable_settings(EvalConfig) | {"seed", "seeds"}
_TRAIN_FREE = resumable_settings(TrainConfig) - {"epochs"} | {"seed", "run"}
_MODEL_FIELDS = ("arch", "defense", "alpha_train", "beta", "model_id", "threat_model", "factory", "mean", "std")


@dataclass(frozen=True)
class Member:
    """One run of a group: its name, its seeds (training, attack; None when unknown), its records,
    and every setting that must be the same across a group (name -> value)."""

    name: str
    train_seed: int | None
    attack_seed: int | None
    records: pd.DataFrame = dataclasses.field(repr=False, compare=False)
    settings: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), repr=False)

    @property
    def key(self) -> tuple[int | None, int | None]:
        """What pairs this run with a run of another group: its seeds."""
        return self.train_seed, self.attack_seed


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[Member, ...]

    @property
    def n_examples(self) -> int:
        return len(self.members[0].records)


@dataclass(frozen=True)
class MetricSummary:
    """One metric of a group: the mean over its runs and its two-level interval; ``sd`` the runs'
    spread (ddof 1; NaN with one run); ``run_share`` the share of one run's variance due to the
    run rather than the test examples (NaN with one run); ``values`` each run's own value."""

    metric: str
    alpha: float | None
    mean: float
    lo: float
    hi: float
    sd: float
    run_share: float
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.alpha, paren=True)


@dataclass(frozen=True)
class GroupSummary:
    name: str
    runs: tuple[str, ...]
    n_examples: int
    metrics: tuple[MetricSummary, ...]
    config: BootstrapConfig
    method: str = METHOD


@dataclass(frozen=True)
class GroupDifference:
    """One metric, mean of A's runs minus mean of B's, with its two-level interval; ``p_value``
    the test over runs (None with one run on a side); ``improvement`` the probability that a run
    of A beats a run of B (ties count one half)."""

    metric: str
    alpha: float | None
    a: float
    b: float
    difference: float
    lo: float
    hi: float
    p_value: float | None
    test: str  # "paired t over 5 seeds", "Welch t over 5 and 4 runs", or ONE_RUN's reason
    improvement: float
    runs_a: int
    runs_b: int

    @property
    def label(self) -> str:
        return metric_label(self.metric, self.alpha, paren=True)


@dataclass(frozen=True)
class GroupComparison:
    a: GroupSummary
    b: GroupSummary
    paired: bool
    differences: tuple[GroupDifference, ...]
    config: BootstrapConfig


# --- reading a group ------------------------------------------------------------------------------


def expand(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Result folders from ``spec``: a folder, a glob (``'results/x-a2-s*'``), comma-separated
    folders or globs, or a list of them; in the order given, each glob's matches sorted."""
    items: list[str] = []
    for item in ([spec] if isinstance(spec, (str, Path)) else list(spec)):
        items.extend(part.strip() for part in str(item).split(",") if part.strip())
    if not items:
        raise WmrbenchError("no result folder given")
    paths: list[Path] = []
    for item in items:
        if glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item))
            if not matches:
                raise WmrbenchError(f"{item}: no result folder matches")
            paths.extend(matches)
        else:
            paths.append(Path(item))
    seen: set[Path] = set()
    out = []
    for path in paths:  # a folder named twice (a glob and its name) is one run
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def _folder(path: Path) -> Path:
    return path.parent if path.name in (SUMMARY_NAME, RECORDS_NAME) and path.is_file() else path


def _settings(summary: Summary) -> dict[str, Any]:
    """Every setting of a result that must be the same across a group: the evaluation's and the
    model's (its training config for a wmrbench checkpoint), but the seeds and where things are."""
    out = {k: v for k, v in settings_of(summary.config).items() if k not in _EVAL_FREE}
    train = summary.model.train_config
    if train:
        flat = {k: v for k, v in train.items() if k != "attack"}
        flat.update(train.get("attack") or {})  # the training attack's eps, steps, ... flat, as messages name them
        for key, value in flat.items():
            if key not in _TRAIN_FREE:
                out[key if key not in out else f"training {key}"] = value
    else:
        model: ModelInfo = summary.model
        out.update({k: getattr(model, k) for k in _MODEL_FIELDS})
    return out


def members_of(path: str | Path) -> list[Member]:
    """The runs in one result folder: one, or one per attack seed of ``evaluate --seeds``."""
    folder = _folder(Path(path))
    name, records = result_records(folder)
    summary = read_summary(folder / SUMMARY_NAME) if (folder / SUMMARY_NAME).is_file() else None
    if summary is None:  # records alone: nothing to check them by, no seed to pair them by
        return [Member(name, None, None, records)]
    settings = tuple(sorted(_settings(summary).items()))
    train_seed = summary.model.train_config.get("seed") if summary.model.train_config else None
    spread = summary.seed_spread
    if spread is None:
        return [Member(name, train_seed, summary.config.seed, records, settings)]
    out = [Member(f"{name}@{spread.seeds[0]}", train_seed, spread.seeds[0], records, settings)]
    for seed in spread.seeds[1:]:
        path_k = folder / seed_records_name(seed)
        if not path_k.is_file():
            raise WmrbenchError(f"{folder}: the attack seed {seed} is in its summary but {path_k.name} is missing")
        out.append(Member(f"{name}@{seed}", train_seed, seed, read_records(path_k), settings))
    return out


def load_group(spec: str | Path | Sequence[str | Path], name: str | None = None) -> Group:
    """A group from result folders (see :func:`expand`), checked: one method, the same examples."""
    members = [m for path in expand(spec) for m in members_of(path)]
    label = name or (spec if isinstance(spec, str) else ", ".join(map(str, expand(spec))))
    group = Group(str(label), tuple(members))
    check_group(group)
    return group


def group_of(name: str, runs: Sequence[tuple[str, pd.DataFrame]]) -> Group:
    """A group from records already in memory (``(run name, records)`` pairs), e.g. for tests and
    reports; nothing to check their settings by, so only the examples are checked."""
    group = Group(name, tuple(Member(n, None, None, r) for n, r in runs))
    check_group(group)
    return group


def check_group(group: Group) -> None:
    """One line when a group's runs hold different examples, differ in a setting other than the
    seed, or a run appears twice."""
    if not group.members:
        raise WmrbenchError(f"{group.name}: no runs")
    first = group.members[0]
    names = [m.name for m in group.members]
    for i, member in enumerate(group.members[1:], start=1):
        if member.name in names[:i]:
            raise WmrbenchError(f"{group.name}: the run {member.name} is given twice")
        differs = same_examples(first.records, member.records)
        if differs is not None:
            raise WmrbenchError(f"{group.name}: runs {first.name} and {member.name} hold different test examples "
                                f"({differs}); evaluate every run with the same {setting('n_examples')} and data")
        if first.settings and member.settings:
            a, b = dict(first.settings), dict(member.settings)
            other = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
            if other:
                key = other[0]
                raise WmrbenchError(
                    f"{group.name}: runs {first.name} and {member.name} differ in {setting(key)} "
                    f"({_show(a.get(key))} against {_show(b.get(key))}); a group holds seeds of one method, "
                    "every other setting the same")
    keys = [m.key for m in group.members if m.key != (None, None)]
    if len(keys) != len(set(keys)):
        raise WmrbenchError(f"{group.name}: two runs have the same seeds; a group's runs differ in their seed")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(getattr(value, "value", value))


# --- the numbers ------------------------------------------------------------------------------------


def _alphas(groups: Sequence[Group], alphas: Sequence[float] | None) -> list[float]:
    if alphas is not None:
        return list(alphas)
    sets = [tr_alphas(m.records) for g in groups for m in g.members]
    common = [a for a in sets[0] if all(a in s for s in sets[1:])]
    return common or list(DEFAULT_ALPHAS)  # A_sa needs only the unweighted attack's records


def _summary(group: Group, names: list[tuple[str, float | None]], points: np.ndarray, means: np.ndarray,
             within: np.ndarray, config: BootstrapConfig) -> GroupSummary:
    lo, hi = percentile_interval(means, config.level)
    share = run_variance_share(points, within)
    sd = points.std(axis=0, ddof=1) if points.shape[0] > 1 else np.full(points.shape[1], np.nan)
    metrics = tuple(
        MetricSummary(metric, key, float(points[:, i].mean()), float(lo[i]), float(hi[i]), float(sd[i]), float(share[i]),
                      tuple(float(v) for v in points[:, i]))
        for i, (metric, key) in enumerate(names))
    return GroupSummary(group.name, tuple(m.name for m in group.members), group.n_examples, metrics, config)


def group_summary(group: Group, config: BootstrapConfig = BootstrapConfig(),
                  alphas: Sequence[float] | None = None) -> GroupSummary:
    """Per metric: the mean over the group's runs, its two-level interval, the runs' sd and the
    share of variance due to the runs (:class:`MetricSummary`)."""
    tl = two_level([[m.records for m in group.members]], _alphas([group], alphas), config)
    return _summary(group, tl.names, tl.points[0], tl.means[0], tl.within[0], config)


def seeds_pair_up(a: Group, b: Group) -> bool:
    """Whether run i of A and run i of B share their seeds, for every i (after sorting by seed)."""
    ka, kb = [m.key for m in a.members], [m.key for m in b.members]
    return len(ka) > 1 and (None, None) not in ka and sorted(ka) == sorted(kb)


def _sorted(group: Group) -> Group:
    return dataclasses.replace(group, members=tuple(sorted(group.members, key=lambda m: m.key)))


def run_test(a: np.ndarray, b: np.ndarray, paired: bool) -> np.ndarray:
    """Two-sided p-values of 'the two methods' runs have the same mean', per column: runs along
    axis -2 (runs x metrics), or along the last axis but one of stacked simulations.

    ``paired``: Student's t on the per-seed differences (n - 1 degrees of freedom); else Welch's t
    (unequal variances). Both need two runs on each side. Runs with no spread at all give p 1
    when the means are equal, 0 when not."""
    # scipy.special alone: scipy.stats takes three times as long to import (1.7 s of CPU here).
    from scipy.special import stdtr

    # Rounded to 1e-9 points: two runs equal but for float rounding (weights summed in another
    # order) are equal, not a "difference" with a tiny spread.
    a, b = np.round(np.asarray(a, dtype=np.float64), 9), np.round(np.asarray(b, dtype=np.float64), 9)
    with np.errstate(divide="ignore", invalid="ignore"):
        if paired:
            d = a - b
            n = d.shape[-2]
            se = d.std(axis=-2, ddof=1) / math.sqrt(n)
            t = d.mean(axis=-2) / se
            df = np.full(t.shape, n - 1.0)
            mean = d.mean(axis=-2)
        else:
            na, nb = a.shape[-2], b.shape[-2]
            va, vb = a.var(axis=-2, ddof=1) / na, b.var(axis=-2, ddof=1) / nb
            se = np.sqrt(va + vb)
            mean = a.mean(axis=-2) - b.mean(axis=-2)
            t = mean / se
            df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        p = 2.0 * stdtr(df, -np.abs(t))
    degenerate = ~(se > 0)
    return np.where(degenerate, np.where(np.isclose(mean, 0.0, atol=1e-9), 1.0, 0.0), np.minimum(p, 1.0))


def probability_of_improvement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, the share of pairs (run of A, run of B) in which A's value is higher; ties
    count one half (the Mann-Whitney statistic over ``len(a) * len(b)``)."""
    diff = a[:, None, :] - b[None, :, :]
    return ((diff > 0).sum(axis=(0, 1)) + 0.5 * (diff == 0).sum(axis=(0, 1))) / (a.shape[0] * b.shape[0])


def compare_groups(a: Group, b: Group, config: BootstrapConfig = BootstrapConfig(),
                   alphas: Sequence[float] | None = None) -> GroupComparison:
    """A minus B per metric: the difference of the groups' means, its two-level interval (runs of
    each group resampled, then the shared examples), the test over runs and the probability of
    improvement. The two groups must hold the same examples (one line otherwise)."""
    differs = same_examples(a.members[0].records, b.members[0].records)
    if differs is not None:
        raise WmrbenchError(f"{a.name} and {b.name} hold different test examples ({differs}): a paired comparison "
                            f"needs the same examples in both; evaluate both with the same {setting('n_examples')}")
    paired = seeds_pair_up(a, b)
    if paired:
        a, b = _sorted(a), _sorted(b)
    tl = two_level([[m.records for m in a.members], [m.records for m in b.members]], _alphas([a, b], alphas), config,
                   paired=paired)
    summary_a = _summary(a, tl.names, tl.points[0], tl.means[0], tl.within[0], config)
    summary_b = _summary(b, tl.names, tl.points[1], tl.means[1], tl.within[1], config)
    d = tl.means[0] - tl.means[1]
    lo, hi = percentile_interval(d, config.level)
    pa, pb = tl.points
    ra, rb = len(pa), len(pb)
    if ra > 1 and rb > 1:
        p = run_test(pa, pb, paired)
        test = f"paired t over {ra} seeds" if paired else f"Welch t over {ra} and {rb} runs"
    else:
        p = [None] * len(tl.names)
        test = ONE_RUN if ra == rb == 1 else f"one run in {'A' if ra == 1 else 'B'}: no test over runs"
    improvement = probability_of_improvement(pa, pb)
    diffs = tuple(
        GroupDifference(metric, key, float(pa[:, i].mean()), float(pb[:, i].mean()),
                        float(pa[:, i].mean() - pb[:, i].mean()), float(lo[i]), float(hi[i]),
                        None if p[i] is None else float(p[i]), test, float(improvement[i]), ra, rb)
        for i, (metric, key) in enumerate(tl.names))
    return GroupComparison(summary_a, summary_b, paired, diffs, config)


def group_verdict(d: GroupDifference, level: float = SIGNIFICANCE) -> str:
    """With runs on both sides: 'A higher (significant at 5%, paired t over 5 seeds)' or 'not
    significant'. With one run on a side: whether the interval excludes 0, and that it covers the
    test examples only (the training runs' randomness is not in it)."""
    side = "A higher" if d.difference > 1e-9 else "B higher" if d.difference < -1e-9 else "equal"
    if d.p_value is not None:
        word = "significant" if d.p_value < level else "not significant"
        return f"{side} ({word} at {level:.0%}, {d.test})"
    excludes = d.lo > 0 or d.hi < 0
    return f"{side} ({'interval excludes 0' if excludes else 'interval holds 0'}; {d.test})"


# --- tables -------------------------------------------------------------------------------------------


def comparison_title(c: GroupComparison) -> str:
    how = "seeds pair up: paired t over runs" if c.paired else "seeds do not pair up: Welch t over runs"
    if len(c.a.runs) == 1 or len(c.b.runs) == 1:
        how = "no test over runs (one run on a side)"
    return (f"A = {c.a.name} ({len(c.a.runs)} runs), B = {c.b.name} ({len(c.b.runs)} runs): {c.a.n_examples} examples "
            f"shared by every run; {how}; {c.config.resamples} two-level bootstrap resamples (seed {c.config.seed})")


def comparison_frame(c: GroupComparison) -> pd.DataFrame:
    """One row per metric, full precision (the CSV)."""
    rows = []
    for d in c.differences:
        ma = next(m for m in c.a.metrics if (m.metric, m.alpha) == (d.metric, d.alpha))
        mb = next(m for m in c.b.metrics if (m.metric, m.alpha) == (d.metric, d.alpha))
        rows.append({
            "Metric": d.metric, "alpha_test": d.alpha,
            "A": d.a, "B": d.b, "runs A": d.runs_a, "runs B": d.runs_b, "A - B": d.difference,
            "A - B_lo": d.lo, "A - B_hi": d.hi, "p (over runs)": d.p_value, "test": d.test,
            "P(A > B)": d.improvement, "sd A": ma.sd, "sd B": mb.sd, "run share A": ma.run_share,
            "run share B": mb.run_share, "verdict": group_verdict(d),
        })
    return pd.DataFrame(rows)


def _num(value: float, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def display_rows(c: GroupComparison) -> tuple[list[str], list[list[str]]]:
    """The table as text: means with two decimals, the difference with its two-level interval,
    the test over runs, the probability of improvement, each side's sd over runs and the share
    of a run's variance due to the run."""
    level = f"{c.config.level:.0%}"
    headers = ["Metric", "alpha_test", "A (mean)", "B (mean)", "A - B", f"{level} two-level interval", "p (over runs)",
               "P(A > B)", "sd A / B", "run share A / B", "verdict"]
    frame = comparison_frame(c)
    rows = []
    for d, (_, r) in zip(c.differences, frame.iterrows()):
        rows.append([d.metric, "-" if d.alpha is None else number_key(d.alpha), f"{d.a:.2f}", f"{d.b:.2f}", f"{d.difference:+.2f}",
                     f"[{d.lo:+.2f}, {d.hi:+.2f}]", _num(d.p_value, ".3g"), f"{d.improvement:.2f}",
                     f"{_num(r['sd A'], '.2f')} / {_num(r['sd B'], '.2f')}",
                     f"{_num(r['run share A'], '.0%')} / {_num(r['run share B'], '.0%')}", group_verdict(d)])
    return headers, rows


def to_markdown(c: GroupComparison) -> str:
    from tabulate import tabulate

    headers, rows = display_rows(c)
    runs = f"A: {', '.join(c.a.runs)}\n\nB: {', '.join(c.b.runs)}\n\n"
    return f"{comparison_title(c)}\n\n{runs}" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def compare_group_folders(spec_a: str | Path | Sequence[str | Path], spec_b: str | Path | Sequence[str | Path],
                          config: BootstrapConfig = BootstrapConfig(), output: str | Path | None = None,
                          fmt: CompareFormat | None = None) -> tuple[GroupComparison, Path | None]:
    """:func:`compare_groups` of two groups of result folders (each a folder, a glob, or several);
    the table written to ``output`` (Markdown or CSV, by ``fmt`` or the suffix) atomically."""
    from wmrbench.core.io import atomic_write_text

    a = load_group(spec_a)
    b = load_group(spec_b)
    comparison = compare_groups(a, b, config)
    written = None
    if output is not None and str(output) != STDOUT:
        written = atomic_write_text(output, render_groups(comparison, output_format(output, fmt)))
    return comparison, written


def render_groups(comparison: GroupComparison, fmt: CompareFormat) -> str:
    """The file's text: CSV (full precision) or Markdown."""
    return to_csv(comparison_frame(comparison)) if fmt is CompareFormat.CSV else to_markdown(comparison)


def is_single_run(spec: str | Path | Sequence[str | Path]) -> bool:
    """Whether ``spec`` names one result folder holding one run (no attack seeds beside it)."""
    paths = expand(spec)
    return len(paths) == 1 and len(members_of(paths[0])) == 1


def as_summary(group: GroupSummary, like: Summary) -> Summary:
    """The group as one result row (tables, reports): ``like`` (one of its runs' summaries) with
    the group's name, the means over its runs as metrics and the two-level intervals as its
    uncertainty (whose method says so)."""
    from wmrbench.results.records import Metrics, Uncertainty

    means: dict[str, Any] = {"A_sa": {}, "A_tr": {}, "A_wc": {}}
    intervals: dict[str, Any] = {}
    for m in group.metrics:
        if m.alpha is None:
            means[m.metric], intervals[m.metric] = m.mean, (m.lo, m.hi)
        else:
            means[m.metric][m.alpha] = m.mean
            intervals.setdefault(m.metric, {})[m.alpha] = (m.lo, m.hi)
    metrics = Metrics(group.n_examples, means["A_nat"], means["A_rob"], means["A_sa"], means["A_tr"], means["A_wc"])
    unc = Uncertainty(f"{group.method}, {len(group.runs)} runs", group.config.level, group.config.resamples,
                      group.config.seed, intervals, {})
    return dataclasses.replace(like, run=group.name, metrics=metrics, uncertainty=unc, seed_spread=None)
